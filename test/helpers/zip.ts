// Reading ZIP archives with independent implementations: Info-ZIP's `unzip` (integrity test with
// CRC check, listing, extraction) and python3's zipfile (entry metadata). Both are system tools:
// CI installs `unzip` with apt-get (.ci/run); python3 ships with the Debian base image.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MAX_BUFFER = 512 * 1024 * 1024;

/** `unzip -t`: every entry read and its CRC-32 checked. Throws with unzip's output on failure. */
export async function unzipTest(file: string): Promise<string> {
  const { stdout } = await run('unzip', ['-t', file], { maxBuffer: MAX_BUFFER });
  if (!/No errors detected/.test(stdout)) throw new Error(`unzip -t failed:\n${stdout}`);
  return stdout;
}

/** Entry names in central-directory order (`unzip -Z1`). */
export async function unzipList(file: string): Promise<string[]> {
  const { stdout } = await run('unzip', ['-Z1', file], { maxBuffer: MAX_BUFFER });
  return stdout.split('\n').filter((l) => l !== '');
}

/** One entry's bytes (`unzip -p`; names must not contain wildcard characters). */
export async function unzipRead(file: string, name: string): Promise<Buffer> {
  const { stdout } = await run('unzip', ['-p', file, name], { maxBuffer: MAX_BUFFER, encoding: 'buffer' });
  return stdout;
}

export interface PyZipEntry {
  name: string;
  size: number;
  compressSize: number;
  crc: number;
  compressType: number;
  flagBits: number;
  headerOffset: number;
  /** Hex of the central directory extra field. */
  extra: string;
  dateTime: number[];
  /** sha256 hex of the content as python extracted it (CRC checked by zipfile on read). */
  sha256: string;
}

const PY = `
import hashlib, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    out = []
    for i in z.infolist():
        h = hashlib.sha256()
        with z.open(i) as f:
            while True:
                b = f.read(1 << 20)
                if not b: break
                h.update(b)
        out.append(dict(name=i.filename, size=i.file_size, compressSize=i.compress_size, crc=i.CRC,
                        compressType=i.compress_type, flagBits=i.flag_bits, headerOffset=i.header_offset,
                        extra=i.extra.hex(), dateTime=list(i.date_time), sha256=h.hexdigest()))
    print(json.dumps(dict(bad=bad, entries=out)))
`;

/** python3 zipfile: testzip() (CRC of every entry) and per-entry metadata. */
export async function pythonZipInfo(file: string): Promise<{ bad: string | null; entries: PyZipEntry[] }> {
  const { stdout } = await run('python3', ['-c', PY, file], { maxBuffer: MAX_BUFFER });
  return JSON.parse(stdout) as { bad: string | null; entries: PyZipEntry[] };
}
