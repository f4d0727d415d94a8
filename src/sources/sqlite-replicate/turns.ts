/**
 * Runs async tasks one at a time, in the order they ask (a FIFO lock). replicate stores WAL
 * segments while a generation's full snapshot is being stored; both write through one
 * Repository, whose `flush` waits for every blob queued so far, so a segment must not flush
 * while the snapshot keeps queueing pieces. The snapshot waits for its turn before each piece,
 * so a segment waits for at most one piece (and the few blobs in flight).
 */
export class Turns {
  private tail: Promise<void> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  /** Resolves once every task that asked before has finished. */
  wait(): Promise<void> {
    return this.run(async () => {});
  }
}
