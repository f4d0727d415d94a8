#!/usr/bin/env -S node --max-semi-space-size=2
import { unlockEarly } from "./early-unlock.js";

// The repository's scrypt starts now, on the thread pool, while the program loads.
unlockEarly(process.argv, process.env);
await import("./program.js");
