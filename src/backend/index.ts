export type { Backend, BackendCapabilities, GetOptions, ObjectInfo, PutOptions } from "./backend.js";
export { objectName } from "./backend.js";
export { localBackend } from "./local.js";
export { openBackend } from "./open.js";
