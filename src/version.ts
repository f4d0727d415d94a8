/** Program version, written into every snapshot. Keep in step with package.json. */
export const VERSION = "0.1.0";
