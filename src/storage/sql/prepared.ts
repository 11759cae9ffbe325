import { CompiledQuery, type Compilable, type Kysely, type QueryResult } from 'kysely';
import type { IndexDatabase } from './schema.js';

type Db = Kysely<IndexDatabase>;

/** Stands for a value bound at execution time (kysely sees an ordinary value and makes it a parameter). */
class Slot {
  constructor(readonly name: string) {}
}

export type PreparedStatement<V, R> = (db: Db, values: V) => Promise<QueryResult<R>>;

/**
 * A statement built and compiled by kysely once, on first use, then executed with new values.
 * The ingest transaction runs about ten statements per instance; building and compiling each with
 * kysely cost more CPU than the database spent executing it. `build` receives stand-ins for the
 * values (read them only as values: `v.x` where kysely takes a value, never in JS logic), so the
 * SQL text never depends on them. One PreparedStatement per store: the SQL is its dialect's.
 */
export function prepared<V extends object, R>(build: (db: Db, v: V) => Compilable<R>): PreparedStatement<V, R> {
  let compiled: CompiledQuery<R> | undefined;
  const slots = new Proxy({} as V, {
    get: (_target, name) => {
      if (typeof name !== 'string') throw new TypeError('prepared statement values are read by name');
      return new Slot(name);
    },
  });
  return (db, values) => {
    compiled ??= build(db, slots).compile();
    const parameters = compiled.parameters.map((p) => {
      if (!(p instanceof Slot)) return p;
      const value = (values as Record<string, unknown>)[p.name];
      if (value === undefined) throw new TypeError(`prepared statement: no value for ${p.name}`);
      return value;
    });
    return db.executeQuery(CompiledQuery.raw(compiled.sql, parameters) as CompiledQuery<R>);
  };
}
