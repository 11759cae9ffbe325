/** Who asked, and through which door. Every archive call takes a Principal and an Origin. */
export interface Origin {
  protocol: 'dicomweb' | 'rest' | 'dimse' | 'cli' | 'internal';
  remoteIp?: string;
  callingAe?: string;
  calledAe?: string;
  user?: string;
}

export interface Principal {
  /** 'anonymous' until an auth plugin authenticates requests. */
  kind: 'anonymous' | 'user' | 'system';
  id: string;
  roles: readonly string[];
}

export const ANONYMOUS: Principal = Object.freeze({ kind: 'anonymous', id: 'anonymous', roles: Object.freeze([]) as readonly string[] });
export const SYSTEM: Principal = Object.freeze({ kind: 'system', id: 'system', roles: Object.freeze(['admin']) as readonly string[] });
