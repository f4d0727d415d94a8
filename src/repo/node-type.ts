// No imports from Node: the console's page compiles this type too (src/app/console/api-types.ts).

/** What a tree node is. */
export type NodeType = "file" | "dir" | "symlink" | "fifo" | "chardev" | "blockdev";
