// A shaped network link for the push/pull scenarios, as /work/shared/tools/shaped-link.sh makes it: a network
// namespace joined to the host by a veth pair with a tbf qdisc at RATE in each direction; registries listen
// inside the namespace, so every byte a client sends or fetches crosses the link. The host side's interface
// counters give the bytes that really went over it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { sh, sleep, startServer, waitHttp } from './util.mjs';

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

/**
 * What the link really carries: one plain TCP transfer of random bytes from the host to a sink inside the
 * namespace (the direction of a push), best of 2. tbf's rate counts every byte it sends, and TCP's own traffic
 * and pacing take their share, so this is what any client can reach: the honest floor for a push of N bytes is
 * N / this rate, a little above N / the nominal rate.
 */
export async function tcpGoodput(link, bytes = 24e6) {
  const port = 7000 + (process.pid % 1000);
  const sink = `const s=require('net').createServer((c)=>{let n=0;c.on('data',(b)=>n+=b.length);c.on('end',()=>c.end(String(n)));});s.listen(${port},'${link.addr}',()=>console.log('up'));setTimeout(()=>process.exit(0),60000).unref();`;
  const srv = startServer(['ip', 'netns', 'exec', link.ns, process.execPath, '-e', sink], { logFile: '/dev/null' });
  try {
    const data = crypto.randomBytes(bytes);
    let best = 0;
    for (let i = 0; i < 2; i++) {
      const rate = await new Promise((resolve, reject) => {
        const tryConnect = (left) => {
          const t0 = process.hrtime.bigint();
          const c = net.connect(port, link.addr, () => c.end(data));
          let got = '';
          c.on('data', (b) => (got += b));
          c.on('end', () => (Number(got) === bytes ? resolve(bytes / (Number(process.hrtime.bigint() - t0) / 1e9)) : reject(new Error(`sink got ${got} of ${bytes} bytes`))));
          c.on('error', (e) => (left > 0 ? sleep(100).then(() => tryConnect(left - 1)) : reject(e)));
        };
        tryConnect(50);
      });
      best = Math.max(best, rate);
    }
    return best;
  } finally {
    await srv.stop();
  }
}
