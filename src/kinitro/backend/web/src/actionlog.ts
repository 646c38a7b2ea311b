// Decoder of the evaluator's compact action log ("KACT", kinitro.evaluator.episode_logger):
//
//   magic "KACT" | u16 version | u16 action_dim | u32 steps | u32 max_steps | u64 seed
//   | u32 episode_index | u8 flags | u16 len + benchmark_id | u16 len + task | u16 len +
//   job_id | u16 len + conditions JSON (version 2) | steps×action_dim float32 actions
//   | steps float64 rewards | steps u8 success
//
// all little-endian (versions 1 and 2); and the replay of the commanded end-effector path
// from the actions.

export interface ActionLog {
  version: number;
  actionDim: number;
  steps: number;
  maxSteps: number;
  seed: bigint;
  episodeIndex: number;
  benchmarkId: string;
  task: string;
  jobId: string;
  /** The competition knobs the episode was played under (version 2; {} for version 1). */
  conditions: Record<string, unknown>;
  actions: Float32Array[];
  rewards: Float64Array;
  successes: Uint8Array;
}

export class ActionLogError extends Error {}

const HEAD_SIZE = 29;

export function decodeActionLog(buf: ArrayBuffer): ActionLog {
  const view = new DataView(buf);
  if (buf.byteLength < HEAD_SIZE) throw new ActionLogError("action log truncated: header incomplete");
  const magic = String.fromCharCode(...new Uint8Array(buf, 0, 4));
  if (magic !== "KACT") throw new ActionLogError("not a Kinitro action log (bad magic)");
  const version = view.getUint16(4, true);
  if (version !== 1 && version !== 2) {
    throw new ActionLogError(`unsupported action log version ${version}`);
  }
  const actionDim = view.getUint16(6, true);
  const steps = view.getUint32(8, true);
  const maxSteps = view.getUint32(12, true);
  const seed = view.getBigUint64(16, true);
  const episodeIndex = view.getUint32(24, true);
  let pos = HEAD_SIZE;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const texts: string[] = [];
  const fields = ["benchmark_id", "task", "job_id", "conditions"].slice(0, version === 1 ? 3 : 4);
  for (const what of fields) {
    if (pos + 2 > buf.byteLength) throw new ActionLogError(`action log truncated in ${what}`);
    const n = view.getUint16(pos, true);
    pos += 2;
    if (pos + n > buf.byteLength) throw new ActionLogError(`action log truncated in ${what}`);
    texts.push(decoder.decode(new Uint8Array(buf, pos, n)));
    pos += n;
  }
  const expected = pos + steps * actionDim * 4 + steps * 8 + steps;
  if (buf.byteLength !== expected) {
    throw new ActionLogError(
      `action log body has ${buf.byteLength - pos} bytes, expected ${expected - pos}`,
    );
  }
  const actions: Float32Array[] = [];
  for (let t = 0; t < steps; t++) {
    const a = new Float32Array(actionDim);
    for (let d = 0; d < actionDim; d++) a[d] = view.getFloat32(pos + (t * actionDim + d) * 4, true);
    actions.push(a);
  }
  pos += steps * actionDim * 4;
  const rewards = new Float64Array(steps);
  for (let t = 0; t < steps; t++) rewards[t] = view.getFloat64(pos + t * 8, true);
  pos += steps * 8;
  const successes = new Uint8Array(buf.slice(pos, pos + steps));
  let conditions: Record<string, unknown> = {};
  if (version === 2) {
    try {
      conditions = JSON.parse(texts[3]) as Record<string, unknown>;
    } catch {
      throw new ActionLogError("action log conditions are not JSON");
    }
  }
  return {
    version,
    actionDim,
    steps,
    maxSteps,
    seed,
    episodeIndex,
    benchmarkId: texts[0],
    task: texts[1],
    jobId: texts[2],
    conditions,
    actions,
    rewards,
    successes,
  };
}

/** Meta-World moves its mocap body by clip(a, -1, 1) · action_scale per step. */
export const ACTION_SCALE = 0.01;
const MOCAP_LOW = [-0.5, 0.4, 0.05];
const MOCAP_HIGH = [0.5, 1.0, 0.5];

/**
 * Commanded end-effector positions after each step, replayed from the logged actions
 * (first three action dims = xyz deltas), starting from `start` (the observed hand
 * position at reset when a step sample has it).
 */
export function replayHandPath(actions: Float32Array[], start: number[]): number[][] {
  const pos = [...start.slice(0, 3)];
  const out: number[][] = [[...pos]];
  for (const a of actions) {
    for (let d = 0; d < 3; d++) {
      const delta = Math.max(-1, Math.min(1, a[d] ?? 0)) * ACTION_SCALE;
      pos[d] = Math.max(MOCAP_LOW[d], Math.min(MOCAP_HIGH[d], pos[d] + delta));
    }
    out.push([...pos]);
  }
  return out;
}
