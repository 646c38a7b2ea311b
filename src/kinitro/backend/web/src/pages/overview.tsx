// Overview: network stats, competitions with their leaderboards, live jobs, activity feed.

import type { ComponentChildren } from "preact";
import { useResource } from "../api";
import {
  Badge,
  CompetitionLink,
  Empty,
  HotkeyText,
  JobLink,
  Loading,
  SubmissionLink,
  TimeAgo,
  useNow,
} from "../components";
import { DASH, int, pct } from "../format";
import type * as api from "../generated/api";
import { type CompetitionView, toLeaderboard } from "../model";
import { type FeedEntry, type State, useStore } from "../store";
import { SupersededNote, withoutSuperseded } from "../superseded";
import { LiveJobsTable } from "./jobs";
import { LeaderboardTable, LeaderSummary } from "./leaderboard";

export function OverviewPage() {
  const s = useStore();
  const now = useNow();
  const competitions = [...s.competitions.values()].sort(
    (a, b) => Number(b.active ?? false) - Number(a.active ?? false) || a.id.localeCompare(b.id),
  );
  return (
    <>
      <h1 tabIndex={-1}>Overview</h1>
      <StatsStrip s={s} />
      <div class="grid-main">
        <div class="col-wide">
          <section aria-labelledby="competitions-h">
            <h2 id="competitions-h">Competitions</h2>
            {!s.snapshotLoaded ? (
              <Loading what="competitions" />
            ) : competitions.length === 0 ? (
              <Empty>No competitions yet. An admin creates them through the API.</Empty>
            ) : (
              competitions.map((c) => <CompetitionCard key={c.id} c={c} s={s} />)
            )}
          </section>
          <section aria-labelledby="live-jobs-h">
            <h2 id="live-jobs-h">
              Live jobs <a class="more" href="/jobs">all jobs</a>
            </h2>
            <LiveJobsTable s={s} now={now} limit={8} />
          </section>
        </div>
        <aside class="col-side" aria-labelledby="activity-h">
          <h2 id="activity-h">Live activity</h2>
          <ActivityFeed feed={s.feed} now={now} />
          <h2 id="recent-subs-h">Recent submissions</h2>
          <RecentSubmissions s={s} now={now} />
        </aside>
      </div>
    </>
  );
}

function StatsStrip(props: { s: State }) {
  const { stats, validators, jobs } = props.s;
  const connected = [...validators.values()].filter((v) => v.connected).length;
  const running = [...jobs.values()].filter((j) => j.state === "running" || j.state === "starting")
    .length;
  const cards: [string, ComponentChildren, string][] = [
    ["Validators online", int(stats.validatorsConnected ?? connected), "validators"],
    ["Submissions", int(stats.submissions), "submissions"],
    ["Jobs running", int(Math.max(running, stats.jobsRunning ?? 0)), "jobs-running"],
    ["Jobs queued", int(stats.jobsQueued), "jobs-queued"],
    ["Episodes", int(stats.episodes), "episodes"],
    ["Step samples", int(stats.stepSamples), "steps"],
  ];
  return (
    <ul class="stats" aria-label="Network statistics">
      {cards.map(([label, value, key]) => (
        <li key={key} data-testid={`stat-${key}`}>
          <span class="stat-value">{value}</span>
          <span class="stat-label">{label}</span>
        </li>
      ))}
    </ul>
  );
}

function CompetitionCard(props: { c: CompetitionView; s: State }) {
  const { c, s } = props;
  const touched = s.touched.get(`competition:${c.id}`);
  // The snapshot carries the leaderboard but not the candidates awaiting approval: fetch
  // the full one for admin-approved competitions, and for any after a leaderboard event.
  const needsRest = touched !== undefined || !c.leaderboard || c.approvalMode === "admin";
  const fresh = useResource(
    needsRest ? `competitions/${encodeURIComponent(c.id)}/leaderboard` : undefined,
    (raw: api.Leaderboard) => toLeaderboard(raw),
    touched,
  );
  const board = fresh.data ?? c.leaderboard;
  return (
    <article class="card" aria-labelledby={`comp-${c.id}`} data-testid={`competition-${c.id}`}>
      <header class="card-head">
        <h3 id={`comp-${c.id}`}>
          <CompetitionLink id={c.id} name={c.name} />
        </h3>
        <Badge state={c.active ? "running" : "cancelled"} label={c.active ? "active" : "inactive"} />
        <span class="muted">
          {c.benchmarks.map((b) => b.benchmarkId).join(", ") || DASH}
          {c.points !== undefined && ` · ${c.points} pts`}
          {c.minSuccessRate !== undefined && ` · min ${pct(c.minSuccessRate, 0)}`}
        </span>
      </header>
      <LeaderSummary competition={c} board={board} />
      <LeaderboardTable board={board} caption={`Leaderboard of ${c.name}`} limit={5} />
    </article>
  );
}

export function describeEvent(p: api.RealtimeEvent): ComponentChildren {
  switch (p.event_type) {
    case "submission_received":
      return (
        <>
          New submission <SubmissionLink id={p.submission_id} /> by{" "}
          <HotkeyText hotkey={p.miner_hotkey} /> in {p.competition_id ?? DASH}
        </>
      );
    case "submission_rejected":
      return (
        <>
          Submission <SubmissionLink id={p.submission_id} /> rejected: {p.reason}
        </>
      );
    case "job_created":
      return (
        <>
          Job <JobLink id={p.job_id} /> created for {p.benchmark_id}
        </>
      );
    case "job_status":
      return (
        <>
          Job <JobLink id={p.job_id} /> {p.state.replace(/_/g, " ")} on{" "}
          <HotkeyText hotkey={p.validator_hotkey} /> ({p.episodes_done}/{p.episodes_total})
        </>
      );
    case "episode_completed":
      return (
        <>
          Episode {p.episode_index} of <JobLink id={p.job_id} /> ({p.task}){" "}
          {p.success ? "succeeded" : "failed"}
        </>
      );
    case "evaluation_completed":
      return (
        <>
          Evaluation of <JobLink id={p.job_id} /> {p.state} on{" "}
          <HotkeyText hotkey={p.validator_hotkey} />: {pct(p.success_rate)}
        </>
      );
    case "leaderboard_updated":
      return (
        <>
          Leaderboard of <CompetitionLink id={p.competition_id} /> updated
        </>
      );
    case "weights_updated":
      return <>New weights computed</>;
    case "validator_connected":
      return (
        <>
          Validator <HotkeyText hotkey={p.validator_hotkey} /> connected
        </>
      );
    case "validator_disconnected":
      return (
        <>
          Validator <HotkeyText hotkey={p.validator_hotkey} /> disconnected
        </>
      );
    default:
      return <>{p.event_type.replace(/_/g, " ")}</>;
  }
}

function ActivityFeed(props: { feed: FeedEntry[]; now: number }) {
  const feed = props.feed.slice(0, 15);
  return (
    <div aria-live="polite" aria-relevant="additions" data-testid="activity">
      {feed.length === 0 ? (
        <Empty>Waiting for events…</Empty>
      ) : (
        <ol class="feed">
          {feed.map((e) => (
            <li key={e.key} class={`feed-${e.type}`}>
              <span class="feed-text">{describeEvent(e.payload)}</span>
              <TimeAgo at={e.at} now={props.now} />
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

function RecentSubmissions(props: { s: State; now: number }) {
  const { shown, hidden } = withoutSuperseded(props.s.submissions);
  const subs = shown.slice(0, 8);
  if (subs.length === 0 && hidden === 0) return <Empty>No submissions yet.</Empty>;
  return (
    <>
    <ol class="feed" data-testid="recent-submissions">
      {subs.map((x) => (
        <li key={x.id}>
          <span class="feed-text">
            <SubmissionLink id={x.id} /> <HotkeyText hotkey={x.minerHotkey} />{" "}
            <Badge state={x.status} />
          </span>
          <TimeAgo at={x.createdAt} now={props.now} />
        </li>
      ))}
    </ol>
    <SupersededNote hidden={hidden} />
    </>
  );
}
