/**
 * The DIMSE SCP (SPEC §4): accepts TCP connections and runs one Acceptor per association. The
 * association cap is applied by negotiation (A-ASSOCIATE-RJ 2/3/2), so every peer gets a proper
 * answer; close() stops accepting, lets associations finish for a while, then aborts the rest.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Archive } from '../archive/archive.js';
import type { CallContext, Logger } from '../archive/context.js';
import type { KnownNode } from './acse/ae-filter.js';
import { Acceptor, type DimsePolicy, type FindHandler } from './scp/acceptor.js';
import type { GetHandler, MoveHandler } from './scp/retrieve.js';

export type { DimsePolicy, FindHandler } from './scp/acceptor.js';
export type { GetHandler, MoveHandler } from './scp/retrieve.js';
export { createFindHandler, type FindDeps } from './scp/find.js';
export { createMoveHandler, type MoveDeps, type MoveDestination } from './scp/move.js';
export { createGetHandler, type GetDeps } from './scp/get.js';

export interface DimseServerDeps {
  archive: Archive;
  /** The node registry (archive/nodes.ts NodeService); needed when policy.whitelist is on. */
  nodes?: { find(ctx: CallContext, aeTitle: string): Promise<KnownNode | undefined> };
  policy: DimsePolicy;
  logger: Logger;
  /** The C-FIND SCP (`createFindHandler`, scp/find.ts); without it Q/R FIND contexts are refused (result 3). */
  find?: FindHandler;
  /** The C-MOVE SCP (`createMoveHandler`, scp/move.ts); without it Q/R MOVE contexts are refused (result 3). */
  move?: MoveHandler;
  /** The C-GET SCP (`createGetHandler`, scp/get.ts); without it Q/R GET contexts are refused (result 3). */
  get?: GetHandler;
}

export interface DimseServer {
  listen(port: number, host?: string): Promise<{ port: number }>;
  /** Associations open now (negotiating or established). */
  readonly associations: number;
  /** Stops accepting; waits up to `drainMs` (default 5000) for open associations, then aborts them. */
  close(options?: { drainMs?: number }): Promise<void>;
}

/**
 * Connections that hold no association — no A-ASSOCIATE-RQ yet (ARTIM runs), or answered with an
 * A-ASSOCIATE-RJ and not yet closed by the peer — do not count against max_associations; at most
 * this many wait at once, and one more closes the oldest of them (a client sends its request
 * within milliseconds of connecting: a host holding idle connections cannot lock others out).
 */
const MAX_PENDING_CONNECTIONS = 32;
/**
 * Room beyond the associations and the waiting connections (those evicted but not yet closed);
 * past it, new connections are closed at once (flood guard: sockets are finite).
 */
const CONNECTION_SLACK = 16;

export function createDimseServer(deps: DimseServerDeps): DimseServer {
  const { policy, logger } = deps;
  const open = new Set<Acceptor>();
  let server: Server | undefined;

  const onConnection = (socket: Socket): void => {
    if (open.size >= policy.maxAssociations + MAX_PENDING_CONNECTIONS + CONNECTION_SLACK) {
      socket.destroy();
      return;
    }
    let pending = 0;
    let oldestPending: Acceptor | undefined;
    // Connections holding no slot: no A-ASSOCIATE-RQ yet, or rejected and not yet closed by the peer.
    for (const a of open) {
      if (a.holdsSlot) continue;
      pending++;
      oldestPending ??= a;
    }
    if (pending >= MAX_PENDING_CONNECTIONS && oldestPending !== undefined) {
      logger.debug({ peer: oldestPending.ul.remoteAddress }, 'DIMSE connection closed: no association (none requested yet, or rejected) and too many such connections');
      oldestPending.ul.destroy();
      open.delete(oldestPending);
    }
    const nodes = deps.nodes;
    const acceptor: Acceptor = new Acceptor({
      archive: deps.archive,
      policy,
      ...(nodes ? { findNode: (ctx: CallContext, ae: string) => nodes.find(ctx, ae) } : {}),
      ...(deps.find ? { find: deps.find } : {}),
      ...(deps.move ? { move: deps.move } : {}),
      ...(deps.get ? { get: deps.get } : {}),
      logger,
      otherAssociations: () => {
        let n = 0;
        for (const a of open) if (a !== acceptor && a.holdsSlot) n++;
        return n;
      },
    });
    open.add(acceptor);
    void acceptor.closed.then(() => open.delete(acceptor));
    acceptor.attach(socket);
  };

  return {
    get associations() {
      return open.size;
    },
    async listen(port, host) {
      if (server) throw new Error('DIMSE server already listening');
      const s = createServer({ noDelay: true }, onConnection);
      server = s;
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      s.on('error', (err) => logger.error({ err: err.message }, 'DIMSE listener error'));
      const address = s.address();
      return { port: typeof address === 'object' && address ? address.port : port };
    },
    async close(options = {}) {
      const s = server;
      server = undefined;
      const stopped = s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve();
      const drainMs = options.drainMs ?? 5000;
      if (open.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, drainMs);
        });
        await Promise.race([Promise.all([...open].map((a) => a.closed)), timeout]);
        clearTimeout(timer);
        for (const a of open) a.abort('server shutting down');
        // A-ABORT sent: the peers close; ARTIM bounds those that do not.
        await Promise.race([Promise.all([...open].map((a) => a.closed)), new Promise((r) => setTimeout(r, 1000))]);
        for (const a of open) a.ul.destroy();
      }
      await stopped;
    },
  };
}
