// Formatting helpers: percentages, intervals, times, hotkeys.

export const DASH = "—";

export function pct(v: number | undefined, digits = 1): string {
  return v === undefined ? DASH : `${(v * 100).toFixed(digits)}%`;
}

export function interval(lo: number | undefined, hi: number | undefined): string {
  if (lo === undefined || hi === undefined) return DASH;
  return `${(lo * 100).toFixed(1)}–${(hi * 100).toFixed(1)}%`;
}

export function fixed(v: number | undefined, digits = 2): string {
  return v === undefined ? DASH : v.toFixed(digits);
}

export function int(v: number | undefined): string {
  return v === undefined ? DASH : Math.round(v).toLocaleString("en-US");
}

export function shortKey(key: string | undefined, keep = 6): string {
  if (!key) return DASH;
  return key.length <= keep * 2 + 1 ? key : `${key.slice(0, keep)}…${key.slice(-4)}`;
}

export function shortId(id: string | undefined): string {
  if (!id) return DASH;
  return id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

export function parseTime(iso: string | undefined): number | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
}

export function ago(iso: string | undefined, now = Date.now()): string {
  const t = parseTime(iso);
  if (t === undefined) return DASH;
  const s = Math.round((now - t) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function dateTime(iso: string | undefined): string {
  const t = parseTime(iso);
  if (t === undefined) return DASH;
  return new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function duration(seconds: number | undefined): string {
  if (seconds === undefined) return DASH;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return DASH;
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function humanize(s: string | undefined): string {
  return s ? s.replace(/_/g, " ") : DASH;
}
