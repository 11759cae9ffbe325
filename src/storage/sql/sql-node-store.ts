import type { Selectable } from 'kysely';
import { StorageError } from '../errors.js';
import type { NodeFields, NodeListOptions, NodePage, NodeRecord, NodeStore } from '../nodes.js';
import type { DicomNodesTable } from './schema.js';
import { fromDbBool, toDbBool, type SqlWriteDriver } from './write-driver.js';

type NodeRow = Selectable<DicomNodesTable>;

/**
 * NodeStore over kysely, shared by the SQLite and PostgreSQL adapters (plain SQL both accept:
 * INSERT … ON CONFLICT DO NOTHING, UPDATE … RETURNING).
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
        // Insert-or-nothing, then update: tells created from updated without a dialect-specific
        // trick. Under READ COMMITTED a concurrent delete can fall between the two; try again.
        for (let attempt = 0; attempt < 3; attempt++) {
          const inserted = await trx
            .insertInto('dicom_nodes')
            .values({ ae_title: node.aeTitle, ...values, created_at: at })
            .onConflict((oc) => oc.column('ae_title').doNothing())
            .returningAll()
            .executeTakeFirst();
          if (inserted) return { node: toRecord(inserted), created: true };
          const updated = await trx.updateTable('dicom_nodes').set(values).where('ae_title', '=', node.aeTitle).returningAll().executeTakeFirst();
          if (updated) return { node: toRecord(updated), created: false };
        }
        throw new StorageError('DATABASE_UNAVAILABLE', 'node upsert kept conflicting with concurrent changes');
      });
    },

    async get(aeTitle) {
      const row = await db.selectFrom('dicom_nodes').selectAll().where('ae_title', '=', aeTitle).executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },

    async list(options: NodeListOptions): Promise<NodePage> {
      let base = db.selectFrom('dicom_nodes');
      if (options.moveDestination !== undefined) base = base.where('move_destination', '=', toDbBool(options.moveDestination));
      const [rows, count] = await Promise.all([
        base.selectAll().orderBy('ae_title').limit(options.limit).offset(options.offset).execute(),
        base.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirst(),
      ]);
      return { items: rows.map(toRecord), total: Number(count?.n ?? 0) };
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
