import { sql, type Selectable } from 'kysely';
import type { NodeFields, NodeListOptions, NodePage, NodeRecord, NodeStore } from '../nodes.js';
import type { DicomNodesTable } from './schema.js';
import { readInSnapshot } from './read-snapshot.js';
import { fromDbBool, toDbBool, type SqlWriteDriver } from './write-driver.js';

type NodeRow = Selectable<DicomNodesTable>;

/**
 * NodeStore over kysely, shared by the SQLite and PostgreSQL adapters (SQL both accept:
 * INSERT … ON CONFLICT DO UPDATE … RETURNING).
 */
export function createSqlNodeStore(driver: SqlWriteDriver): NodeStore {
  const { db, dialect } = driver;

  const toRecord = (r: NodeRow): NodeRecord => ({
    aeTitle: r.ae_title,
    host: r.host,
    port: Number(r.port),
    description: r.description,
    allowStore: fromDbBool(r.allow_store),
    allowFind: fromDbBool(r.allow_find),
    allowRetrieve: fromDbBool(r.allow_retrieve),
    moveDestination: fromDbBool(r.move_destination),
    createdAt: dialect.fromDbTime(r.created_at),
    updatedAt: dialect.fromDbTime(r.updated_at),
  });

  return {
    async upsert(node: NodeFields, options) {
      const at = dialect.toDbTime(options?.at ?? new Date());
      const values = {
        host: node.host,
        port: node.port,
        description: node.description,
        allow_store: toDbBool(node.allowStore),
        allow_find: toDbBool(node.allowFind),
        allow_retrieve: toDbBool(node.allowRetrieve),
        move_destination: toDbBool(node.moveDestination),
        updated_at: at,
      };
      return driver.writeTransaction(async (trx) => {
        // SQLite runs one write transaction at a time (BEGIN IMMEDIATE): what this SELECT sees
        // holds until the upsert below. PostgreSQL tells from the upserted row itself (xmax = 0:
        // inserted by this statement, not locked and updated), as a SELECT there could race.
        const existed =
          dialect.name === 'sqlite' ? (await trx.selectFrom('dicom_nodes').select('ae_title').where('ae_title', '=', node.aeTitle).executeTakeFirst()) !== undefined : undefined;
        // One statement: INSERT … ON CONFLICT DO UPDATE is atomic under READ COMMITTED too, so a
        // concurrent delete or upsert of the same AE title can neither make it fail nor lose it.
        const row = await trx
          .insertInto('dicom_nodes')
          .values({ ae_title: node.aeTitle, ...values, created_at: at })
          .onConflict((oc) =>
            oc.column('ae_title').doUpdateSet((eb) => ({
              host: eb.ref('excluded.host'),
              port: eb.ref('excluded.port'),
              description: eb.ref('excluded.description'),
              allow_store: eb.ref('excluded.allow_store'),
              allow_find: eb.ref('excluded.allow_find'),
              allow_retrieve: eb.ref('excluded.allow_retrieve'),
              move_destination: eb.ref('excluded.move_destination'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .returningAll()
          .$if(dialect.name === 'postgres', (qb) => qb.returning(sql<boolean>`(xmax = 0)`.as('inserted')))
          .executeTakeFirstOrThrow();
        const created = existed !== undefined ? !existed : (row as { inserted?: unknown }).inserted === true;
        return { node: toRecord(row), created };
      });
    },

    async get(aeTitle) {
      const row = await db.selectFrom('dicom_nodes').selectAll().where('ae_title', '=', aeTitle).executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },

    async list(options: NodeListOptions): Promise<NodePage> {
      // The page and its total from one snapshot (two pool statements could see different commits).
      return readInSnapshot(db, dialect, async (trx) => {
        let base = trx.selectFrom('dicom_nodes');
        if (options.moveDestination !== undefined) base = base.where('move_destination', '=', toDbBool(options.moveDestination));
        const rows = await base.selectAll().orderBy('ae_title').limit(options.limit).offset(options.offset).execute();
        const count = await base.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirst();
        return { items: rows.map(toRecord), total: Number(count?.n ?? 0) };
      });
    },

    async listMoveDestinations() {
      const rows = await db.selectFrom('dicom_nodes').selectAll().where('move_destination', '=', toDbBool(true)).orderBy('ae_title').execute();
      return rows.map(toRecord);
    },

    async delete(aeTitle) {
      const result = await driver.writeTransaction((trx) => trx.deleteFrom('dicom_nodes').where('ae_title', '=', aeTitle).executeTakeFirst());
      return Number(result.numDeletedRows) > 0;
    },
  };
}
