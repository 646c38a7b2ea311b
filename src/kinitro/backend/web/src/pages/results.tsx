// A submission's results: per-task success, failure causes and validator agreement.

import { Badge, Empty, HotkeyText, JobLink, RateWithInterval } from "../components";
import { DASH, fixed, humanize, pct } from "../format";
import type * as api from "../generated/api";

interface TaskRow {
  task: string;
  perValidator: Map<string, api.TaskMetrics>;
}

export function ResultsBreakdown(props: { results: api.ListedResult[]; score?: api.ExplainedScore }) {
  const results = props.results;
  // Validators of this submission and their overall metrics.
  const validators = results.map((r) => ({
    hotkey: r.validator_hotkey,
    job: r.job_id,
    state: r.state,
    overall: r.metrics?.overall,
    perTask: r.metrics?.per_task ?? {},
    rate: r.success_rate ?? r.metrics?.overall.success_rate,
  }));
  const tasks = new Map<string, TaskRow>();
  const failures = new Map<string, number>();
  for (const v of validators) {
    for (const [task, m] of Object.entries(v.perTask)) {
      const row = tasks.get(task) ?? { task, perValidator: new Map() };
      row.perValidator.set(v.hotkey, m);
      tasks.set(task, row);
    }
    for (const [cause, n] of Object.entries(v.overall?.failures ?? {})) {
      failures.set(cause, (failures.get(cause) ?? 0) + n);
    }
  }
  const rates = validators.map((v) => v.rate).filter((x): x is number => x !== undefined);
  const spread = rates.length > 1 ? Math.max(...rates) - Math.min(...rates) : undefined;
  const hotkeys = validators.map((v) => v.hotkey);
  const taskRows = [...tasks.values()].sort((a, b) => a.task.localeCompare(b.task));

  return (
    <>
      <section aria-labelledby="tasks-h">
        <h2 id="tasks-h">Per-task success</h2>
        {taskRows.length === 0 ? (
          <Empty>No per-task results yet.</Empty>
        ) : (
          <div class="table-wrap">
            <table data-testid="per-task">
              <caption class="sr-only">Success rate per task, aggregated and per validator</caption>
              <thead>
                <tr>
                  <th scope="col">Task</th>
                  <th scope="col">Success rate (median) [95% CI]</th>
                  {hotkeys.map((h) => (
                    <th scope="col" key={h}>
                      <HotkeyText hotkey={h} />
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {taskRows.map((row) => {
                  const ms = [...row.perValidator.values()];
                  const med = median(ms.map((m) => m.success_rate));
                  const first = ms[0];
                  return (
                    <tr key={row.task}>
                      <th scope="row">{row.task}</th>
                      <td>
                        <RateWithInterval
                          rate={med}
                          lo={ms.length === 1 ? first.ci_low : undefined}
                          hi={ms.length === 1 ? first.ci_high : undefined}
                        />
                      </td>
                      {hotkeys.map((h) => {
                        const m = row.perValidator.get(h);
                        return (
                          <td key={h}>
                            {m
                              ? `${pct(m.success_rate)} (${m.successes}/${m.scored_episodes ?? m.episodes})`
                              : DASH}
                          </td>
                        );
                      })}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <div class="two-col wide-right">
        <section aria-labelledby="fail-h" class="card">
          <h2 id="fail-h">Failure causes</h2>
          {failures.size === 0 ? (
            <Empty>
              {props.score && props.score.successes < props.score.episodes
                ? "No faults: the unsuccessful episodes ran to their step budget without a crash, timeout or invalid action."
                : "No failures recorded."}
            </Empty>
          ) : (
            <ul class="bars" data-testid="failures">
              {[...failures.entries()]
                .sort((a, b) => b[1] - a[1])
                .map(([cause, n]) => (
                  <li key={cause}>
                    <span class="bar-label">
                      {humanize(cause)}
                      <span class="muted">{AGENT_FAULTS.has(cause) ? " (agent fault)" : " (infrastructure, not scored)"}</span>
                    </span>
                    <span class="bar-value">{n}</span>
                  </li>
                ))}
            </ul>
          )}
        </section>
        <section aria-labelledby="agree-h" class="card">
          <h2 id="agree-h">Validator agreement</h2>
          {validators.length === 0 ? (
            <Empty>No validator has reported yet.</Empty>
          ) : (
            <>
              <div class="table-wrap">
              <table data-testid="agreement">
                <caption class="sr-only">Overall result of each validator</caption>
                <thead>
                  <tr>
                    <th scope="col">Validator</th>
                    <th scope="col">Job</th>
                    <th scope="col">State</th>
                    <th scope="col">Success rate [95% CI]</th>
                    <th scope="col" class="num">
                      Mean return
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {validators.map((v, i) => (
                    <tr key={`${v.hotkey}-${v.job ?? i}`}>
                      <td>
                        <HotkeyText hotkey={v.hotkey} />
                      </td>
                      <td>
                        <JobLink id={v.job} />
                      </td>
                      <td>
                        <Badge state={v.state} />
                      </td>
                      <td>
                        <RateWithInterval
                          rate={v.rate}
                          lo={v.overall?.ci_low}
                          hi={v.overall?.ci_high}
                        />
                      </td>
                      <td class="num">{fixed(v.overall?.mean_return)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              </div>
              <p class="muted">
                {spread === undefined
                  ? "One validator so far: agreement is checked once several have reported."
                  : `Spread between validators: ${pct(spread)}.`}
              </p>
            </>
          )}
        </section>
      </div>
    </>
  );
}

const AGENT_FAULTS = new Set([
  "agent_timeout",
  "agent_crash",
  "invalid_action",
  "protocol_violation",
  "invalid_bundle",
]);

function median(values: (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

