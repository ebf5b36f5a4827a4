// Reads CPU time and memory of processes from /proc (Linux only), the way an operator's tools do.
import { readFileSync } from 'node:fs';

// USER_HZ is 100 on every Linux that Node supports (it is part of the kernel ABI of /proc).
const TICK_S = 0.01;

/** utime + stime of one process, in seconds; NaN when it is gone. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Field 2 (comm) may hold spaces and parentheses: count fields after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_S; // fields 14 and 15 of stat(5)
  } catch {
    return NaN;
  }
}

/** VmRSS in bytes; NaN when the process is gone. */
export function rssBytes(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

export const sumCpu = (pids) => pids.reduce((s, pid) => s + cpuSeconds(pid), 0);
export const sumRss = (pids) => pids.reduce((s, pid) => s + rssBytes(pid), 0);

/** Whole-machine busy and total jiffies (first line of /proc/stat), to tell contention. */
export function machineTicks() {
  const f = readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1);
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const v = f.slice(0, 8).map(Number);
  const idle = v[3] + (v[4] ?? 0); // idle + iowait
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Direct children of `pid` (nginx's worker under its master). */
export function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
