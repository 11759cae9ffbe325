/**
 * NodeStore port: the remote DICOM nodes (`dicom_nodes`, SPEC §5) — the AE whitelist of the DIMSE
 * SCP and the catalogue of C-MOVE destinations and SCU peers. Persistent, so every instance sees
 * the same nodes (ARCHITECTURE rule 11). Every adapter passes test/contract/node-store.contract.ts.
 *
 * Values arrive validated by the archive (archive/nodes.ts); the store only keeps them.
 * AE titles are compared exactly (case-sensitive, already trimmed).
 */
export interface NodeFields {
  aeTitle: string;
  host: string;
  port: number;
  description: string | null;
  allowStore: boolean;
  allowFind: boolean;
  allowRetrieve: boolean;
  moveDestination: boolean;
}

export interface NodeRecord extends NodeFields {
  createdAt: Date;
  updatedAt: Date;
}

export interface NodeListOptions {
  limit: number;
  offset: number;
  /** Only nodes with this move_destination flag. */
  moveDestination?: boolean;
}

export interface NodePage {
  /** Ordered by AE title. */
  items: NodeRecord[];
  /** Matches ignoring limit/offset. */
  total: number;
}

export interface NodeStore {
  /**
   * Inserts or replaces the node keyed by `aeTitle` (every field replaced; createdAt kept on update).
   * `created` tells which happened.
   */
  upsert(node: NodeFields, options?: { at?: Date }): Promise<{ node: NodeRecord; created: boolean }>;
  /** Exact, case-sensitive lookup. */
  get(aeTitle: string): Promise<NodeRecord | undefined>;
  list(options: NodeListOptions): Promise<NodePage>;
  /** Every node usable as a C-MOVE destination, ordered by AE title. */
  listMoveDestinations(): Promise<NodeRecord[]>;
  /** True when a node was deleted. */
  delete(aeTitle: string): Promise<boolean>;
}
