export { exportEml } from "./export-eml.js";
export { exportMaildir, maildirFolderName } from "./export-maildir.js";
export { exportMbox, mboxrdEntry } from "./export-mbox.js";
export {
  decodeFolderState,
  encodeFolderState,
  FOLDER_STATE_FILE,
  type FolderMessage,
  type FolderState,
  folderDir,
} from "./folder-state.js";
export {
  connectImap,
  type ImapPullStats,
  ImapSource,
  type ImapTarget,
  imapSourceName,
  parseImapUrl,
} from "./imap-source.js";
export { type ExportStats, type MailFolder, mailFolders, readNode } from "./mail-snapshot.js";
export { type ImapPushStats, pushFolders, pushImap } from "./push.js";
