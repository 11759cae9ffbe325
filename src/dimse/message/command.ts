/**
 * The DIMSE command set (PS3.7 section 9.3 and Annex E): group 0000 elements, always Implicit VR
 * Little Endian, with the Command Group Length (0000,0000) first. Hand-written: a command set is
 * a handful of fixed elements, and this codec is on every message's path.
 */

export const CommandField = {
  C_STORE_RQ: 0x0001,
  C_STORE_RSP: 0x8001,
  C_GET_RQ: 0x0010,
  C_GET_RSP: 0x8010,
  C_FIND_RQ: 0x0020,
  C_FIND_RSP: 0x8020,
  C_MOVE_RQ: 0x0021,
  C_MOVE_RSP: 0x8021,
  C_ECHO_RQ: 0x0030,
  C_ECHO_RSP: 0x8030,
  C_CANCEL_RQ: 0x0fff,
} as const;

/** Command Data Set Type (0000,0800): this value means "no data set"; any other means one follows. */
export const NO_DATA_SET = 0x0101;
/** The value we send when a data set follows (DCMTK and others use 0x0000 too; any other value means present). */
export const DATA_SET_PRESENT = 0x0000;

export const Priority = { MEDIUM: 0x0000, HIGH: 0x0001, LOW: 0x0002 } as const;

export interface CommandSet {
  commandField: number;
  commandDataSetType: number;
  affectedSopClassUid?: string;
  requestedSopClassUid?: string;
  messageId?: number;
  messageIdBeingRespondedTo?: number;
  moveDestination?: string;
  priority?: number;
  status?: number;
  /** Offending Element (0000,0901): tags as 8 hex digits. */
  offendingElement?: string[];
  errorComment?: string;
  errorId?: number;
  affectedSopInstanceUid?: string;
  requestedSopInstanceUid?: string;
  numberOfRemainingSuboperations?: number;
  numberOfCompletedSuboperations?: number;
  numberOfFailedSuboperations?: number;
  numberOfWarningSuboperations?: number;
  moveOriginatorAeTitle?: string;
  moveOriginatorMessageId?: number;
}

type Kind = 'UI' | 'AE' | 'LO' | 'US' | 'AT';
type Key = keyof CommandSet;

/** PS3.7 Table E.1-1, in tag order. */
const FIELDS: readonly { tag: number; key: Key; kind: Kind }[] = [
  { tag: 0x0002, key: 'affectedSopClassUid', kind: 'UI' },
  { tag: 0x0003, key: 'requestedSopClassUid', kind: 'UI' },
  { tag: 0x0100, key: 'commandField', kind: 'US' },
  { tag: 0x0110, key: 'messageId', kind: 'US' },
  { tag: 0x0120, key: 'messageIdBeingRespondedTo', kind: 'US' },
  { tag: 0x0600, key: 'moveDestination', kind: 'AE' },
  { tag: 0x0700, key: 'priority', kind: 'US' },
  { tag: 0x0800, key: 'commandDataSetType', kind: 'US' },
  { tag: 0x0900, key: 'status', kind: 'US' },
  { tag: 0x0901, key: 'offendingElement', kind: 'AT' },
  { tag: 0x0902, key: 'errorComment', kind: 'LO' },
  { tag: 0x0903, key: 'errorId', kind: 'US' },
  { tag: 0x1000, key: 'affectedSopInstanceUid', kind: 'UI' },
  { tag: 0x1001, key: 'requestedSopInstanceUid', kind: 'UI' },
  { tag: 0x1020, key: 'numberOfRemainingSuboperations', kind: 'US' },
  { tag: 0x1021, key: 'numberOfCompletedSuboperations', kind: 'US' },
  { tag: 0x1022, key: 'numberOfFailedSuboperations', kind: 'US' },
  { tag: 0x1023, key: 'numberOfWarningSuboperations', kind: 'US' },
  { tag: 0x1030, key: 'moveOriginatorAeTitle', kind: 'AE' },
  { tag: 0x1031, key: 'moveOriginatorMessageId', kind: 'US' },
];
const BY_TAG: ReadonlyMap<number, (typeof FIELDS)[number]> = new Map(FIELDS.map((f) => [f.tag, f]));

export class CommandSetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandSetError';
  }
}

function text(value: string, pad: number): Buffer {
  const b = Buffer.from(value, 'latin1');
  return b.length % 2 === 0 ? b : Buffer.concat([b, Buffer.from([pad])]);
}

function valueBytes(kind: Kind, value: string | number | string[]): Buffer {
  switch (kind) {
    case 'UI':
      return text(String(value), 0x00);
    case 'AE':
    case 'LO':
      return text(String(value), 0x20);
    case 'US': {
      const b = Buffer.alloc(2);
      b.writeUInt16LE(Number(value) & 0xffff, 0);
      return b;
    }
    case 'AT': {
      const tags = value as string[];
      const b = Buffer.alloc(4 * tags.length);
      tags.forEach((t, i) => {
        b.writeUInt16LE(parseInt(t.slice(0, 4), 16), i * 4);
        b.writeUInt16LE(parseInt(t.slice(4, 8), 16), i * 4 + 2);
      });
      return b;
    }
  }
}

function element(tag: number, value: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0x0000, 0);
  h.writeUInt16LE(tag, 2);
  h.writeUInt32LE(value.length, 4);
  return Buffer.concat([h, value]);
}

/** Encodes a command set, Implicit VR Little Endian, Command Group Length first. */
export function encodeCommandSet(cmd: CommandSet): Buffer {
  const parts: Buffer[] = [];
  for (const f of FIELDS) {
    const v = cmd[f.key];
    if (v === undefined) continue;
    parts.push(element(f.tag, valueBytes(f.kind, v)));
  }
  const body = Buffer.concat(parts);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length, 0);
  return Buffer.concat([element(0x0000, length), body]);
}

function decodeValue(kind: Kind, v: Buffer): string | number | string[] {
  switch (kind) {
    case 'UI':
      return v.toString('latin1').replace(/[\0 ]+$/, '');
    case 'AE':
      return v.toString('latin1').trim();
    case 'LO':
      return v.toString('latin1').replace(/[ \0]+$/, '');
    case 'US':
      if (v.length !== 2) throw new CommandSetError('US element of length other than 2');
      return v.readUInt16LE(0);
    case 'AT': {
      const out: string[] = [];
      for (let o = 0; o + 4 <= v.length; o += 4) {
        out.push(v.readUInt16LE(o).toString(16).padStart(4, '0').toUpperCase() + v.readUInt16LE(o + 2).toString(16).padStart(4, '0').toUpperCase());
      }
      return out;
    }
  }
}

/**
 * Decodes a command set. Elements we do not know (retired ones, private extensions) are skipped;
 * an element outside group 0000 or a length overrunning the bytes is an error.
 */
export function decodeCommandSet(buf: Buffer): CommandSet {
  const out: Partial<Record<Key, string | number | string[]>> = {};
  let o = 0;
  while (o < buf.length) {
    if (o + 8 > buf.length) throw new CommandSetError('truncated command element header');
    const group = buf.readUInt16LE(o);
    const tag = buf.readUInt16LE(o + 2);
    const length = buf.readUInt32LE(o + 4);
    if (group !== 0x0000) throw new CommandSetError(`element of group ${group.toString(16).padStart(4, '0')} in a command set`);
    if (o + 8 + length > buf.length) throw new CommandSetError('command element overruns the command set');
    const f = BY_TAG.get(tag);
    if (f !== undefined) out[f.key] = decodeValue(f.kind, buf.subarray(o + 8, o + 8 + length));
    o += 8 + length;
  }
  if (typeof out.commandField !== 'number') throw new CommandSetError('command set without Command Field (0000,0100)');
  if (typeof out.commandDataSetType !== 'number') throw new CommandSetError('command set without Command Data Set Type (0000,0800)');
  return out as unknown as CommandSet;
}

export function hasDataSet(cmd: CommandSet): boolean {
  return cmd.commandDataSetType !== NO_DATA_SET;
}
