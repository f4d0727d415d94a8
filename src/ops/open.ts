import type { Backend } from "../backend/backend.js";
import { openBackend } from "../backend/open.js";
import { type InitOptions, Repository } from "../repo/repository.js";

export type RepositoryLocation = string | Backend;

async function backendOf(where: RepositoryLocation): Promise<Backend> {
  return typeof where === "string" ? openBackend(where) : where;
}

/** Creates a new repository at a URL or path (or on a backend you built). */
export async function initRepository(
  where: RepositoryLocation,
  password: string,
  options?: InitOptions,
): Promise<Repository> {
  return Repository.init(await backendOf(where), password, options);
}

/** Opens an existing repository; throws WRONG_PASSWORD or REPO_NOT_FOUND errors as LifeboatError. */
export async function openRepository(where: RepositoryLocation, password: string): Promise<Repository> {
  return Repository.open(await backendOf(where), password);
}
