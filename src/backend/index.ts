export type { Backend, BackendCapabilities, GetOptions, ObjectInfo, PutOptions } from "./backend.js";
export { objectName } from "./backend.js";
export {
  type FaultKind,
  type FaultPlan,
  type FaultRecord,
  type FaultRule,
  type FaultyBackend,
  faultyBackend,
} from "./faulty.js";
export { localBackend } from "./local.js";
export { type MemoryBackend, type MemoryBackendOptions, memoryBackend, memoryStore } from "./memory.js";
export { openBackend } from "./open.js";
