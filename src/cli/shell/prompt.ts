import { flushOutput } from "./output.js";

/** Reads a line from the terminal without echoing it. */
export async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  flushOutput(); // what was printed comes before the question
  process.stderr.write(question);
  return new Promise((resolve) => {
    let input = "";
    const wasRaw = stdin.isRaw;
    stdin.setRawMode?.(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const onData = (ch: string) => {
      for (const c of ch) {
        if (c === "\r" || c === "\n" || c === "\u0004") {
          stdin.setRawMode?.(wasRaw);
          stdin.pause();
          stdin.off("data", onData);
          process.stderr.write("\n");
          resolve(input);
          return;
        }
        if (c === "\u0003") {
          stdin.setRawMode?.(wasRaw);
          process.stderr.write("\n");
          process.exit(130);
        }
        if (c === "\u007f") input = input.slice(0, -1);
        else input += c;
      }
    };
    stdin.on("data", onData);
  });
}
