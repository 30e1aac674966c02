// Logins to registries, kept as docker keeps them (~/.docker/config.json, credential helpers): checked against the
// registry (`POST /auth`), stored, erased. No store is needed, so these are functions, not engine verbs.
import type { Credentials } from '../auth/config.js';

export type { Credentials };

/** The key docker's config.json files the logins of `server` under (docker.io when none). */
export async function loginKey(server?: string): Promise<string> {
  const { registryKey } = await import('../auth/config.js');
  const { serverDomain } = await import('../transport/registries-config.js');
  return registryKey(server ? serverDomain(server) : 'docker.io');
}

/** The credentials stored for `server`, if any. */
export async function savedLogin(server?: string): Promise<Credentials | undefined> {
  const { getCredentials } = await import('../auth/config.js');
  return getCredentials(await loginKey(server));
}

/** Checks credentials against the registry (its token flow included); throws when it refuses them. */
export async function checkLogin(server: string | undefined, creds: Credentials, opts: { tlsVerify?: boolean } = {}): Promise<{ identityToken?: string }> {
  const [{ checkLogin }, { serverDomain }] = await Promise.all([
    import('../transport/registry-client.js'),
    import('../transport/registries-config.js'),
  ]);
  return checkLogin(server ? serverDomain(server) : 'docker.io', creds, { tlsVerify: opts.tlsVerify });
}

/** docker login: checks the credentials, then stores them (with the identity token the registry gave). */
export async function login(server: string | undefined, creds: { username: string; password: string }, opts: { tlsVerify?: boolean } = {}): Promise<{ Status: string; IdentityToken?: string }> {
  const res = await checkLogin(server, creds, opts);
  const { storeCredentials } = await import('../auth/config.js');
  await storeCredentials(await loginKey(server), { ...creds, ...(res.identityToken ? { identityToken: res.identityToken } : {}) });
  return { Status: 'Login Succeeded', ...(res.identityToken ? { IdentityToken: res.identityToken } : {}) };
}

/** docker logout: whether there was a login to erase. */
export async function logout(server?: string): Promise<{ key: string; removed: boolean }> {
  const { eraseCredentials } = await import('../auth/config.js');
  const key = await loginKey(server);
  return { key, removed: await eraseCredentials(key) };
}
