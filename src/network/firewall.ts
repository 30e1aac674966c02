// The store's firewall: one nftables table of its own (never a shared table or chain), rewritten whole and
// atomically from the DB whenever networks or published ports change: masquerade for outbound traffic, DNAT for
// published ports (also from the host itself, 127.0.0.1 included, with route_localnet on the bridge), isolation
// between networks and for --internal ones. Removing the table removes everything ply added.
import { spawnSync } from 'node:child_process';
import { PlyError } from '../errors.js';

export interface FirewallNetwork {
  bridge: string;
  subnet: string;
  internal: boolean;
}

export interface FirewallPort {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

const q = (s: string) => JSON.stringify(s);

/** The table's full text (nft syntax). */
export function renderTable(table: string, networks: FirewallNetwork[], ports: FirewallPort[]): string {
  const bridges = networks.map((n) => q(n.bridge));
  const lines: string[] = [`table ip ${table} {`];
  lines.push('  chain hostports {');
  for (const p of ports) {
    const daddr = p.hostIp === '0.0.0.0' || p.hostIp === '' ? '' : `ip daddr ${p.hostIp} `;
    lines.push(`    ${daddr}${p.proto} dport ${p.hostPort} dnat to ${p.containerIp}:${p.containerPort}`);
  }
  lines.push('  }');
  lines.push('  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', '    fib daddr type local jump hostports', '  }');
  lines.push('  chain output {', '    type nat hook output priority -100; policy accept;', '    fib daddr type local jump hostports', '  }');
  lines.push('  chain postrouting {', '    type nat hook postrouting priority srcnat; policy accept;');
  for (const n of networks) {
    if (!n.internal) lines.push(`    ip saddr ${n.subnet} oifname != ${q(n.bridge)} masquerade`);
    // Published ports reached from the host's loopback, or by a container through the host (hairpin).
    lines.push(`    oifname ${q(n.bridge)} ct status dnat ip saddr { 127.0.0.0/8, ${n.subnet} } masquerade`);
  }
  lines.push('  }');
  lines.push('  chain forward {', '    type filter hook forward priority filter; policy accept;', '    ct status dnat accept');
  for (const n of networks) {
    const b = q(n.bridge);
    if (n.internal) {
      lines.push(`    iifname ${b} oifname != ${b} drop`, `    oifname ${b} iifname != ${b} drop`);
    } else {
      const others = bridges.filter((x) => x !== b);
      if (others.length) lines.push(`    iifname ${b} oifname { ${others.join(', ')} } drop`);
    }
  }
  lines.push('  }', '}');
  return `${lines.join('\n')}\n`;
}

function nft(script: string): void {
  const r = spawnSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });
  if (r.error) throw new PlyError(`cannot run nft (Debian package nftables): ${r.error.message}`);
  if (r.status !== 0) throw new PlyError(`nft failed: ${r.stderr.trim().split('\n')[0]}`);
}

/** Replaces the table atomically (one nft transaction). */
export function applyTable(table: string, networks: FirewallNetwork[], ports: FirewallPort[]): void {
  nft(`table ip ${table}\ndelete table ip ${table}\n${renderTable(table, networks, ports)}`);
}

export function dropTable(table: string): void {
  nft(`table ip ${table}\ndelete table ip ${table}\n`);
}

/** Whether the table exists (system check). */
export function hasTable(table: string): boolean {
  return spawnSync('nft', ['list', 'table', 'ip', table], { stdio: 'ignore' }).status === 0;
}
