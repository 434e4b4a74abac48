/** The version of bananna-bot. A test checks it against deno.json. */
export const VERSION = "0.1.0";
