import assert from "node:assert/strict";
import { base64Utf8, maskPatterns, Secrets } from "../../lib/log/redact.ts";

Deno.test("Secrets.mask() hides registered secrets, longest first, and their Basic form", () => {
  const s = new Secrets();
  s.addBasic("robot+mirror", "pa55word-xyz");
  s.add("pa55word-xyz-longer");
  s.add("ab"); // too short to mask without garbling text
  const text = `pw=pa55word-xyz-longer and pa55word-xyz, basic ${
    btoa("robot+mirror:pa55word-xyz")
  }, ab`;
  const masked = s.mask(text);
  assert.ok(!masked.includes("pa55word"));
  assert.ok(!masked.includes(btoa("robot+mirror:pa55word-xyz")));
  assert.match(masked, /, ab$/);
});

Deno.test("maskPatterns() hides secrets nobody registered", async (t) => {
  const rows: [string, string][] = [
    ["Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig", "eyJhbGci"],
    ["authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpw"],
    ["https://user:s3cr3t@quay.example/v2/", "s3cr3t"],
    ['{"password": "hunter22"}', "hunter22"],
    ["GET /token?account=x&token=abcdef123", "abcdef123"],
    ['{"identitytoken": "refresh-me-123"}', "refresh-me-123"],
    // Every key and scheme in any case (a line is scanned only when it names one of them).
    ['{"auth": "dXNlcjpwYXNz"}', "dXNlcjpwYXNz"],
    ['{"Secret": "s-3-c-r-3-t"}', "s-3-c-r-3-t"],
    ["PASSWD=open-sesame", "open-sesame"],
    ["APITOKEN=quay-api-1", "quay-api-1"],
    ["BEARER abcdefgh12345", "abcdefgh12345"],
    ["HTTPS://robot:pw-9x@quay.example/v2/", "pw-9x"],
  ];
  for (const [input, secret] of rows) {
    await t.step(input.slice(0, 30), () => {
      const out = maskPatterns(input);
      assert.ok(!out.includes(secret), out);
      assert.match(out, /\*\*\*/);
    });
  }
  assert.equal(maskPatterns("nothing secret here: nginx:1.25"), "nothing secret here: nginx:1.25");
  assert.equal(maskPatterns("apiToken: placeholder left in"), "apiToken: placeholder left in");
});

Deno.test("Secrets.addBasic() takes a password outside Latin-1 and masks its UTF-8 Basic form", () => {
  const s = new Secrets();
  const password = "пароль-€-密码-1";
  s.addBasic("robot", password); // btoa() alone throws on these characters
  const utf8 = base64Utf8(`robot:${password}`);
  assert.equal(
    new TextDecoder().decode(Uint8Array.from(atob(utf8), (c) => c.charCodeAt(0))),
    `robot:${password}`,
  );
  const masked = s.mask(`pw ${password}, Authorization: Basic ${utf8}, header ${utf8}`);
  assert.ok(!masked.includes(password) && !masked.includes(utf8), masked);
  const latin = new Secrets();
  latin.addBasic("robot", "pässwörd-1");
  const masked2 = latin.mask(`${btoa("robot:pässwörd-1")} ${base64Utf8("robot:pässwörd-1")}`);
  assert.equal(masked2, "*** ***");
});

Deno.test("Secrets.mask(): thousands of long tokens, short and long lines, values added between calls", () => {
  const s = new Secrets();
  const tokens = Array.from(
    { length: 2000 },
    (_, i) => `eyJ${String(i).padStart(6, "0")}${"x".repeat(1500)}`,
  );
  for (const token of tokens.slice(0, 1000)) s.add(token);
  s.add("hunter22");
  assert.equal(s.mask("login with hunter22 ok"), "login with *** ok");
  // Added after a mask: the longest-first order is made again.
  for (const token of tokens.slice(1000)) s.add(token);
  s.add("pw-short-7");
  assert.equal(s.mask("a pw-short-7 b"), "a *** b");
  assert.equal(s.mask(`token ${tokens[1999]} end`), "token *** end");
  assert.equal(s.mask(`two ${tokens[3]}/${tokens[1500]}`), "two ***/***");
  // A secret containing another is masked whole (longest first), also next to short lines.
  s.add("abc-secret");
  s.add("abc-secret-longer");
  assert.equal(s.mask("x abc-secret-longer y abc-secret"), "x *** y ***");
  assert.equal(s.size, 2004);
});
