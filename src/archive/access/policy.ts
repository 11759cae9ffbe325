import type { CallContext } from '../context.js';
import { ArchiveError } from '../errors.js';

/**
 * (principal, action, resource) -> decision, applied inside each archive call so DIMSE and HTTP
 * are governed by the same rules. Until an auth plugin supplies a policy every request is allowed.
 */
export type Action = 'store' | 'read' | 'delete' | 'admin';

export interface AccessPolicy {
  allows(ctx: CallContext, action: Action, resource?: { studyUid?: string }): boolean;
}

export const ALLOW_ALL: AccessPolicy = { allows: () => true };

export function authorize(policy: AccessPolicy, ctx: CallContext, action: Action, resource?: { studyUid?: string }): void {
  if (!policy.allows(ctx, action, resource)) {
    throw new ArchiveError(ctx.principal.kind === 'anonymous' ? 'UNAUTHORIZED' : 'FORBIDDEN', `not allowed to ${action}`);
  }
}
