// No imports from Node: the console's page compiles this type too (src/app/console/api-types.ts).

export type ItemErrorCode =
  /** The source could not be read (permissions, I/O error, a database that refused). */
  | "UNREADABLE"
  /** The item changed type while being read (a file became a folder, a FIFO, ...). */
  | "CHANGED_TYPE"
  /** Stored data the item needs is damaged or missing. */
  | "DAMAGED"
  /** The snapshot holds a name restore refuses to create (`..`, `/`, NUL, a duplicate). */
  | "UNSAFE_NAME"
  /** The target could not be written (permissions, disk full, a name too long, ...). */
  | "UNWRITABLE"
  /** The storage refused or could not be reached while this item was handled. */
  | "STORAGE"
  /** A restored item does not match the snapshot when read back (verify, drills). */
  | "MISMATCH"
  /** A database engine's own check of the restored data failed (drills). */
  | "ENGINE_CHECK"
  /** The repository must record a format feature before this item can be stored, and it could
   * not (storage that refuses to replace the config): the message says what to do. */
  | "NEEDS_FEATURE"
  /** Anything else. */
  | "FAILED";

export interface ItemError {
  /** The item: an absolute source path (backup), a path relative to the target (restore). */
  path: string;
  code: ItemErrorCode;
  message: string;
}
