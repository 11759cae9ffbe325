import type { CallContext, Logger } from '../../archive/context.js';
import type { AcceptedContext } from '../acse/negotiate.js';

/** What an SCP handler is given for one operation. */
export interface OperationContext {
  /** Principal and Origin (protocol 'dimse', calling/called AE, peer address) for archive calls. */
  call: CallContext;
  callingAe: string;
  presentation: AcceptedContext;
  /** Aborted by C-CANCEL or when the association ends. */
  signal: AbortSignal;
  logger: Logger;
}
