// No imports from Node: the console's page compiles this type too (src/app/console/api-types.ts).

import type { NodeType } from "../../repo/node-type.js";

/** One entry of a folder page (`ls --json`, the console's browse). */
export interface FolderEntry {
  /** The name; one that is not UTF-8 shows its other bytes as `\xHH` (core/names.ts), a form
   * paths given back to the library accept. */
  name: string;
  /** Only for a name that is not UTF-8: its exact bytes, base64. */
  nameBytes?: string;
  type: NodeType;
  size: number;
  /** Modification time, ISO-8601 (to the millisecond). */
  mtime: string;
  mode: number;
  uid: number;
  gid: number;
  /** Symlinks: where the link points (shown as `name` is). */
  target?: string;
  targetBytes?: string;
}
