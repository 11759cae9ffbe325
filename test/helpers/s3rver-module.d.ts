// The part of s3rver@3 (a dev dependency without types) that test/helpers/s3rver.ts uses.
declare module 's3rver' {
  import type { AddressInfo } from 'node:net';

  namespace S3rver {
    interface Options {
      address?: string;
      port?: number;
      directory?: string;
      silent?: boolean;
      resetOnClose?: boolean;
      vhostBuckets?: boolean;
      configureBuckets?: { name: string; configs?: (string | Buffer)[] }[];
    }
    /** The Koa context, as far as the test extensions need it. */
    interface Context {
      method: string;
      path: string;
      query: Record<string, string | string[] | undefined>;
      status: number;
      body: unknown;
      type: string;
    }
    type Middleware = (ctx: Context, next: () => Promise<void>) => Promise<void>;
  }

  class S3rver {
    constructor(options?: S3rver.Options);
    /** Koa's middleware list, composed when the server starts listening. */
    middleware: S3rver.Middleware[];
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }
  export = S3rver;
}
