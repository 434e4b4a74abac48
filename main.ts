/** bananna-bot entry point (placeholder until the CLI lands). */
import { VERSION } from "./lib/version.ts";
if (import.meta.main) {
  console.log(`bananna-bot ${VERSION}`);
}
