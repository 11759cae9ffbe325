import type { FastifyRequest } from 'fastify';
import type { CallContext } from '../archive/context.js';
import { ANONYMOUS, type Principal } from '../archive/origin.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by an auth plugin's hook; anonymous otherwise. */
    principal: Principal | null;
  }
}

export function callContext(request: FastifyRequest, protocol: 'dicomweb' | 'rest'): CallContext {
  const principal = request.principal ?? ANONYMOUS;
  return {
    principal,
    origin: { protocol, remoteIp: request.ip, ...(principal.kind === 'user' ? { user: principal.id } : {}) },
  };
}
