// Formatting helpers: percentages, intervals, times, hotkeys.

export const DASH = "—";

export function pct(v: number | null | undefined, digits = 1): string {
  return v == null ? DASH : `${(v * 100).toFixed(digits)}%`;
}

export function interval(lo: number | null | undefined, hi: number | null | undefined): string {
  if (lo == null || hi == null) return DASH;
  return `${(lo * 100).toFixed(1)}–${(hi * 100).toFixed(1)}%`;
}

export function fixed(v: number | null | undefined, digits = 2): string {
  return v == null ? DASH : v.toFixed(digits);
}

export function int(v: number | null | undefined): string {
  return v == null ? DASH : Math.round(v).toLocaleString("en-US");
}

export function shortKey(key: string | null | undefined, keep = 6): string {
  if (!key) return DASH;
  return key.length <= keep * 2 + 1 ? key : `${key.slice(0, keep)}…${key.slice(-4)}`;
}

export function shortId(id: string | null | undefined): string {
  if (!id) return DASH;
  return id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

export function parseTime(iso: string | null | undefined): number | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  const t = parseTime(iso);
  if (t == null) return DASH;
  const s = Math.round((now - t) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function dateTime(iso: string | null | undefined): string {
  const t = parseTime(iso);
  if (t == null) return DASH;
  return new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function duration(seconds: number | null | undefined): string {
  if (seconds == null) return DASH;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function bytes(n: number | null | undefined): string {
  if (n == null) return DASH;
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function humanize(s: string | null | undefined): string {
  return s ? s.replace(/_/g, " ") : DASH;
}
