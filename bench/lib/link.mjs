// A shaped network link for the push/pull scenarios, as /work/shared/tools/shaped-link.sh makes it: a network
// namespace joined to the host by a veth pair with a tbf qdisc at RATE in each direction; registries listen
// inside the namespace, so every byte a client sends or fetches crosses the link. The host side's interface
// counters give the bytes that really went over it.
import fs from 'node:fs';
import path from 'node:path';
import { sh, startServer, waitHttp } from './util.mjs';

export const LINK_RATE_MBIT = 100;

/** Up: a namespace and veth pair with names unique to this run (other benches may have their own links). */
export function linkUp(rateMbit = LINK_RATE_MBIT) {
  const id = `${process.pid % 10000}`;
  const ns = `plybench${id}`;
  const hostIf = `pb${id}h`;
  const nsIf = `pb${id}n`;
  const subnet = `10.214.${process.pid % 200 + 20}`;
  const ip = (...a) => sh(['ip', ...a]);
  const inNs = (...a) => sh(['ip', 'netns', 'exec', ns, ...a]);
  linkDown({ ns, hostIf });
  ip('netns', 'add', ns);
  ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
  ip('link', 'set', nsIf, 'netns', ns);
  ip('addr', 'add', `${subnet}.1/24`, 'dev', hostIf);
  ip('link', 'set', hostIf, 'up');
  inNs('ip', 'addr', 'add', `${subnet}.2/24`, 'dev', nsIf);
  inNs('ip', 'link', 'set', nsIf, 'up');
  inNs('ip', 'link', 'set', 'lo', 'up');
  const tbf = ['root', 'tbf', 'rate', `${rateMbit}mbit`, 'burst', '64kb', 'latency', '200ms'];
  sh(['tc', 'qdisc', 'add', 'dev', hostIf, ...tbf]);
  inNs('tc', 'qdisc', 'add', 'dev', nsIf, ...tbf);
  const counter = (k) => Number(fs.readFileSync(`/sys/class/net/${hostIf}/statistics/${k}`, 'utf8'));
  return {
    ns,
    hostIf,
    addr: `${subnet}.2`,
    subnet: `${subnet}.0/24`,
    rateMbit,
    /** The link's rate in bytes per second. */
    bytesPerSec: (rateMbit * 1e6) / 8,
    /** Bytes the host has sent over the link (to the namespace) and received from it, so far. */
    sent: () => counter('tx_bytes'),
    received: () => counter('rx_bytes'),
    down: () => linkDown({ ns, hostIf }),
  };
}

function linkDown({ ns, hostIf }) {
  sh(['ip', 'netns', 'del', ns], { allowFail: true });
  sh(['ip', 'link', 'del', hostIf], { allowFail: true });
}

let nextPort = 5000;

/** Debian's docker-registry inside the link's namespace (access log on); clients reach it over the link. */
export async function startLinkDistribution(link, dir) {
  fs.mkdirSync(dir, { recursive: true });
  const port = nextPort++;
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(
    cfg,
    `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: ${link.addr}:${port}\n`,
  );
  const logFile = path.join(dir, 'access.log');
  const srv = startServer(['ip', 'netns', 'exec', link.ns, 'docker-registry', 'serve', cfg], { logFile });
  await waitHttp(`http://${link.addr}:${port}/v2/`, 20, srv.alive);
  return { kind: 'distribution', port, host: `${link.addr}:${port}`, dir, data: `${dir}/data`, logFile, stop: srv.stop };
}
