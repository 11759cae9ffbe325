// A Logger that keeps every line (level, first argument, second argument), children included:
// tests read what was logged (e.g. that no patient data reached the log).
import type { Logger } from '../../src/archive/context.js';

export function recordingLogger(): { logger: Logger; lines: [string, unknown, unknown][] } {
  const lines: [string, unknown, unknown][] = [];
  const make = (): Logger => {
    const at =
      (level: string) =>
      (a: unknown, b?: unknown): void => {
        lines.push([level, a, b]);
      };
    return { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal'), child: () => make() } as unknown as Logger;
  };
  return { logger: make(), lines };
}
