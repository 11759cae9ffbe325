/**
 * Reassembly of incoming DIMSE messages from PDV fragments (PS3.7 section 9.1, PS3.8 Annex E).
 * The command set is collected (it is small and bounded); the data set is not: its fragments are
 * pushed into a Readable as they arrive, and when that stream's buffer is full the transport is
 * paused until the consumer (ingest, a C-FIND parser) reads again.
 */
import { Readable } from 'node:stream';
import type { PdvFragment } from '../ul/association.js';
import { CommandSetError, decodeCommandSet, hasDataSet, type CommandSet } from './command.js';

/** A command set is a few hundred bytes; this bounds a hostile one. */
export const MAX_COMMAND_SET_LENGTH = 64 * 1024;
const DATA_SET_HIGH_WATER_MARK = 1024 * 1024;

export interface IncomingMessage {
  contextId: number;
  command: CommandSet;
  /** The data set as it arrives (absent when the command says there is none). */
  dataSet?: Readable;
}

export interface AssemblerHooks {
  message(msg: IncomingMessage): void;
  /** A protocol violation: the association must be aborted. */
  error(detail: string): void;
  /** Flow control of the transport. */
  pause(): void;
  resume(): void;
}

export class MessageAssembler {
  private commandParts: Buffer[] = [];
  private commandLength = 0;
  private commandContext: number | undefined;
  /** The data set being received, and its presentation context. */
  private dataSet: Readable | undefined;
  private dataSetContext = 0;
  private failed = false;
  /** Bytes of data set received (for the association's log line). */
  dataSetBytes = 0;

  constructor(private readonly hooks: AssemblerHooks) {}

  /** Whether a data set is in progress (a drop now loses it). */
  get receivingDataSet(): boolean {
    return this.dataSet !== undefined;
  }

  /** Whether a message is part-way through (its command or its data set): a release now cuts it. */
  get incomplete(): boolean {
    return this.dataSet !== undefined || this.commandContext !== undefined;
  }

  fragment(f: PdvFragment): void {
    if (this.failed) return;
    if (f.command) this.commandFragment(f);
    else this.dataFragment(f);
  }

  /** The association ended: a data set in progress fails, so nothing partial is stored. */
  close(reason: string): void {
    this.failed = true;
    const ds = this.dataSet;
    this.dataSet = undefined;
    ds?.destroy(new Error(reason));
  }

  private fail(detail: string): void {
    this.close(detail);
    this.hooks.error(detail);
  }

  private commandFragment(f: PdvFragment): void {
    if (this.dataSet !== undefined) return this.fail('command fragment received while a data set was expected');
    if (this.commandContext !== undefined && this.commandContext !== f.contextId) return this.fail('command fragments on different presentation contexts');
    this.commandContext = f.contextId;
    this.commandLength += f.data.length;
    if (this.commandLength > MAX_COMMAND_SET_LENGTH) return this.fail('command set too long');
    if (f.data.length > 0) this.commandParts.push(Buffer.from(f.data));
    if (!(f.end && f.last)) return;
    const bytes = Buffer.concat(this.commandParts);
    this.commandParts = [];
    this.commandLength = 0;
    this.commandContext = undefined;
    let command: CommandSet;
    try {
      command = decodeCommandSet(bytes);
    } catch (err) {
      return this.fail(err instanceof CommandSetError ? err.message : 'command set could not be decoded');
    }
    if (!hasDataSet(command)) {
      this.hooks.message({ contextId: f.contextId, command });
      return;
    }
    const dataSet = new Readable({ highWaterMark: DATA_SET_HIGH_WATER_MARK, read: () => this.hooks.resume() });
    // A consumer that gives up (or the close above) must not crash the process.
    dataSet.on('error', () => {});
    // A consumer that stops reading early destroys the stream: never leave the transport paused.
    dataSet.on('close', () => this.hooks.resume());
    this.dataSet = dataSet;
    this.dataSetContext = f.contextId;
    this.hooks.message({ contextId: f.contextId, command, dataSet });
  }

  private dataFragment(f: PdvFragment): void {
    const ds = this.dataSet;
    if (ds === undefined) return this.fail('data set fragment received without a command');
    if (f.contextId !== this.dataSetContext) return this.fail('data set fragment on another presentation context than its command');
    this.dataSetBytes += f.data.length;
    // The slice refers to the socket's chunk, which is not reused: no copy needed.
    if (f.data.length > 0 && !ds.destroyed && !ds.push(f.data)) this.hooks.pause();
    if (f.end && f.last) {
      this.dataSet = undefined;
      if (!ds.destroyed) ds.push(null);
    }
  }
}
