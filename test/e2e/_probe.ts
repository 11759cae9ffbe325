import { generateCorpus } from '/work/main/test/helpers/corpus.ts';
const c = await generateCorpus();
for (const f of c.files) console.log(f.label, f.path, f.bytes.length, f.transferSyntax, f.frames?.map(x=>x.length).join(','));
console.log(c.dir);
