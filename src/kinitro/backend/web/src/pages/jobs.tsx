// Jobs: live jobs with per-validator progress, recent jobs, and one job's detail.

import { useEffect, useState } from "preact/hooks";
import { getJson, useResource } from "../api";
import {
  Async,
  Badge,
  CompetitionLink,
  Empty,
  HotkeyText,
  JobLink,
  KeyValues,
  Progress,
  SubmissionLink,
  TimeAgo,
  useNow,
} from "../components";
import { DASH, dateTime, duration, fixed, pct } from "../format";
import type * as api from "../generated/api";
import { type JobView, TERMINAL_STATES, toJob, toJobDetail, typed } from "../model";
import { mergeJobDetail, type State, useStore } from "../store";

const requestedDetails = new Set<string>();
const MAX_DETAIL_FETCHES = 30;

/**
 * The snapshot lists live jobs without their per-validator progress: fetch each shown
 * job's detail once (assignments + status history); later events keep it current.
 */
function useJobDetails(jobs: JobView[]): void {
  const missing = jobs
    .slice(0, MAX_DETAIL_FETCHES)
    .filter((j) => !j.detailLoaded && !requestedDetails.has(j.id))
    .map((j) => j.id);
  const key = missing.join(",");
  useEffect(() => {
    for (const id of missing) {
      requestedDetails.add(id);
      getJson(`jobs/${encodeURIComponent(id)}`)
        .then((raw) => mergeJobDetail(typed<api.JobDetail>(raw)))
        .catch(() => requestedDetails.delete(id));
    }
  }, [key]);
}

const JOB_STATES = ["queued", "starting", "running", "completed", "failed", "timed_out", "cancelled"];

function ValidatorProgressList(props: { job: JobView }) {
  const progress = [...props.job.progress.values()];
  if (progress.length === 0) return <span class="muted">no validator yet</span>;
  return (
    <ul class="vprogress">
      {progress.map((p) => (
        <li key={p.hotkey}>
          <HotkeyText hotkey={p.hotkey} />
          <Progress
            done={p.episodesDone}
            total={p.episodesTotal}
            label={`Episodes done by validator ${p.hotkey}`}
          />
          <Badge state={p.state} />
          {p.successRate !== undefined && <span class="muted">{pct(p.successRate)}</span>}
        </li>
      ))}
    </ul>
  );
}

export function LiveJobsTable(props: { s: State; now: number; limit?: number }) {
  const all = [...props.s.jobs.values()];
  const live = all.filter((j) => !TERMINAL_STATES.has(j.state));
  const done = all.filter((j) => TERMINAL_STATES.has(j.state));
  const byRecent = (a: JobView, b: JobView) =>
    (b.updatedAt ?? b.createdAt ?? "").localeCompare(a.updatedAt ?? a.createdAt ?? "");
  live.sort(byRecent);
  done.sort(byRecent);
  let rows = [...live, ...done];
  if (props.limit) rows = rows.slice(0, props.limit);
  useJobDetails(rows);
  if (rows.length === 0) return <Empty>No jobs in flight.</Empty>;
  return (
    <div class="table-wrap">
      <table data-testid="live-jobs">
        <caption class="sr-only">Jobs in flight and recently finished, with per-validator progress</caption>
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">Submission</th>
            <th scope="col">Benchmark</th>
            <th scope="col">State</th>
            <th scope="col">Validators</th>
            <th scope="col">Updated</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((j) => (
            <tr key={j.id} data-job={j.id}>
              <td>
                <JobLink id={j.id} />
              </td>
              <td>
                <SubmissionLink id={j.submissionId} />{" "}
                <HotkeyText hotkey={j.minerHotkey} />
              </td>
              <td>{j.benchmarkId ?? DASH}</td>
              <td>
                <Badge state={j.state} />
              </td>
              <td>
                <ValidatorProgressList job={j} />
              </td>
              <td>
                <TimeAgo at={j.updatedAt ?? j.createdAt} now={props.now} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function JobsPage() {
  const s = useStore();
  const now = useNow();
  const [state, setState] = useState("");
  const q = new URLSearchParams({ limit: "50" });
  if (state) q.set("state", state);
  const recent = useResource(`jobs?${q}`, (raw: api.Page_Job) => raw.items.map(toJob), s.touched.get("jobs"), 2000);
  return (
    <>
      <h1 tabIndex={-1}>Jobs</h1>
      <section aria-labelledby="live-h">
        <h2 id="live-h">Live</h2>
        <LiveJobsTable s={s} now={now} />
      </section>
      <section aria-labelledby="all-h">
        <h2 id="all-h">All jobs</h2>
        <form class="filters" onSubmit={(e) => e.preventDefault()}>
          <label for="job-state">State</label>
          <select
            id="job-state"
            value={state}
            onChange={(e) => setState((e.currentTarget as HTMLSelectElement).value)}
          >
            <option value="">any</option>
            {JOB_STATES.map((x) => (
              <option key={x} value={x}>
                {x.replace(/_/g, " ")}
              </option>
            ))}
          </select>
        </form>
        <Async res={recent} what="jobs">
          {(jobs) =>
            jobs.length === 0 ? (
              <Empty>No jobs.</Empty>
            ) : (
              <div class="table-wrap">
                <table data-testid="all-jobs">
                  <caption class="sr-only">Jobs, newest first</caption>
                  <thead>
                    <tr>
                      <th scope="col">Job</th>
                      <th scope="col">Competition</th>
                      <th scope="col">Submission</th>
                      <th scope="col">Benchmark</th>
                      <th scope="col">State</th>
                      <th scope="col">Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    {jobs.map((j) => (
                      <tr key={j.id}>
                        <td>
                          <JobLink id={j.id} />
                        </td>
                        <td>
                          <CompetitionLink id={j.competitionId} />
                        </td>
                        <td>
                          <SubmissionLink id={j.submissionId} />
                        </td>
                        <td>{j.benchmarkId ?? DASH}</td>
                        <td>
                          <Badge state={s.jobs.get(j.id)?.state ?? j.state} />
                        </td>
                        <td>
                          <TimeAgo at={j.createdAt} now={now} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Async>
      </section>
    </>
  );
}

// ----------------------------------------------------------------------- detail

export function JobPage(props: { id: string }) {
  const s = useStore();
  const now = useNow();
  const touched = s.touched.get(`job:${props.id}`);
  const job = useResource(`jobs/${encodeURIComponent(props.id)}`, typed<api.JobDetail>, touched);
  const episodes = useResource(
    `episodes?job_id=${encodeURIComponent(props.id)}&limit=500`,
    (raw: api.Page_Episode) => raw.items,
    touched,
    1500,
  );
  const live = s.jobs.get(props.id);
  return (
    <>
      <h1 tabIndex={-1}>
        Job <span class="mono">{props.id}</span>
      </h1>
      <Async res={job} what="the job">
        {(raw) => {
          const view = toJobDetail(raw);
          // Live progress from the realtime feed overrides the fetched snapshot.
          if (live) for (const [k, v] of live.progress) view.progress.set(k, v);
          return (
            <>
              <KeyValues
                rows={[
                  ["State", <Badge state={live?.state ?? view.state} />],
                  ["Competition", <CompetitionLink id={view.competitionId} />],
                  ["Submission", <SubmissionLink id={view.submissionId} />],
                  ["Benchmark", view.benchmarkId ?? DASH],
                  ["Round", raw.round_id],
                  ["Created", <TimeAgo at={view.createdAt} now={now} />],
                ]}
              />
              <section aria-labelledby="prog-h">
                <h2 id="prog-h">Progress per validator</h2>
                <ValidatorProgressList job={view} />
              </section>
              <ResultsTable results={raw.results} />
              <StatusHistory history={raw.status_history} />
            </>
          );
        }}
      </Async>
      <section aria-labelledby="eps-h">
        <h2 id="eps-h">Episodes</h2>
        <Async res={episodes} what="episodes">
          {(list) => <EpisodesTable episodes={list} />}
        </Async>
      </section>
    </>
  );
}

function ResultsTable(props: { results: api.Result[] }) {
  return (
    <section aria-labelledby="res-h">
      <h2 id="res-h">Results</h2>
      {props.results.length === 0 ? (
        <Empty>No result yet.</Empty>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Result reported by each validator</caption>
            <thead>
              <tr>
                <th scope="col">Validator</th>
                <th scope="col">State</th>
                <th scope="col">Success rate</th>
                <th scope="col">Finished</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {props.results.map((r, i) => (
                <tr key={i}>
                  <td>
                    <HotkeyText hotkey={r.validator_hotkey} />
                  </td>
                  <td>
                    <Badge state={r.state} />
                  </td>
                  <td>{pct(r.success_rate)}</td>
                  <td>{dateTime(r.finished_at)}</td>
                  <td>{r.error ?? DASH}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function StatusHistory(props: { history: api.JobStatus[] }) {
  if (props.history.length === 0) return null;
  return (
    <details class="history">
      <summary>Status history ({props.history.length})</summary>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Status changes reported by validators, in order</caption>
          <thead>
            <tr>
              <th scope="col">Validator</th>
              <th scope="col" class="num">
                Seq
              </th>
              <th scope="col">State</th>
              <th scope="col">Episodes</th>
              <th scope="col">At</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {props.history.map((h, i) => (
              <tr key={i}>
                <td>
                  <HotkeyText hotkey={h.validator_hotkey} />
                </td>
                <td class="num">{h.seq}</td>
                <td>
                  <Badge state={h.state} />
                </td>
                <td>
                  {h.episodes_done}/{h.episodes_total}
                </td>
                <td>{dateTime(h.at)}</td>
                <td>{h.detail ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

export function EpisodesTable(props: { episodes: api.Episode[] }) {
  if (props.episodes.length === 0) return <Empty>No episodes logged yet.</Empty>;
  return (
    <div class="table-wrap">
      <table data-testid="episodes">
        <caption class="sr-only">Episodes, with outcome and failure cause</caption>
        <thead>
          <tr>
            <th scope="col">Episode</th>
            <th scope="col">Task</th>
            <th scope="col">Validator</th>
            <th scope="col">Outcome</th>
            <th scope="col" class="num">
              Reward
            </th>
            <th scope="col" class="num">
              Steps
            </th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        <tbody>
          {props.episodes.map((e, i) => {
            const id = String(e.id);
            const success = e.success;
            const cause = e.failure_cause;
            return (
              <tr key={id ?? i}>
                <td>
                  {id ? (
                    <a href={`/episodes/${encodeURIComponent(id)}`}>
                      #{e.episode_index}
                    </a>
                  ) : (
                    DASH
                  )}
                </td>
                <td>{e.task}</td>
                <td>
                  <HotkeyText hotkey={e.validator_hotkey} />
                </td>
                <td>
                  {success ? (
                    <Badge state="completed" label="success" />
                  ) : (
                    <Badge state="failed" label={cause ? cause.replace(/_/g, " ") : "no success"} />
                  )}
                </td>
                <td class="num">{fixed(e.total_reward)}</td>
                <td class="num">{e.steps}</td>
                <td>{duration(e.duration_s)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
