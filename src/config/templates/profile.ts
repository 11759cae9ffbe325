// What distinguishes one generated configuration from another: values that differ from the
// defaults, and extra comment lines explaining them.
import type { Config } from '../schema.js';
import type { CoreSection } from './key-docs.js';

export type ProfileName = 'standalone' | 'production';

export interface TemplateProfile {
  readonly name: ProfileName;
  /** Comment lines under the file header. */
  readonly intro: readonly string[];
  /** Values that differ from the defaults (including optional keys the profile sets). */
  readonly values: { readonly [S in CoreSection]?: Partial<Config[S]> };
  /** Extra comment lines above a key, by `section.key`. */
  readonly notes: Readonly<Record<string, readonly string[]>>;
}
