/**
 * The one zod every schema uses: `zod/mini` with zod's English messages. The mini API builds a
 * schema without attaching dozens of methods to each instance, so the config schema (built on
 * every start) costs a fraction of the classic API's; the messages are the classic ones (the same
 * English locale `zod` installs).
 *
 * @module
 */
import { z } from "zod/mini";
import en from "zod/v4/locales/en.js";

z.config(en());

export { z };
