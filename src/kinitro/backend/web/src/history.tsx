// History charts: a competition's success over time and the validators' throughput over
// time, from the backend's bucketed series (GET /api/v1/competitions/{id}/history and
// GET /api/v1/validators/throughput; models in backend/api/history.py, typed by generated/api.ts).

import { useResource } from "./api";
import { LineChart } from "./chart";
import { Async, Empty } from "./components";
import { shortKey } from "./format";
import type { SuccessHistory, ThroughputHistory } from "./generated/api";
import { typed } from "./model";

/** Validators drawn in the throughput chart (the busiest ones). */
const MAX_VALIDATOR_LINES = 8;

const seconds = (iso: string) => Date.parse(iso) / 1000;

function bucketWords(s: number): string {
  if (s % 86_400 === 0) return `${s / 86_400} d`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

export function SuccessHistoryChart(props: { competitionId: string; liveKey?: unknown }) {
  const res = useResource(
    `competitions/${encodeURIComponent(props.competitionId)}/history`,
    typed<SuccessHistory>,
    props.liveKey,
    5000,
  );
  return (
    <Async res={res} what="the success history">
      {(h) => {
        if (h.points.length === 0) return <Empty>No results yet: the success history starts with the first one.</Empty>;
        const episodes = h.points.reduce((n, p) => n + p.episodes, 0);
        return (
          <div data-testid="success-history" data-points={h.points.length}>
            <LineChart
              title="Success over time"
              description={`Share of episodes that succeeded per ${bucketWords(h.bucket_s)}, over ${episodes} episodes in ${h.points.length} periods, and the best submission's rate.`}
              x={h.points.map((p) => seconds(p.at))}
              series={[
                { label: "all evaluations", points: h.points.length < 30 },
                { label: "best submission", points: h.points.length < 30, dash: true },
              ]}
              ys={[h.points.map((p) => p.success_rate * 100), h.points.map((p) => p.best_success_rate * 100)]}
              xLabel="time"
              yLabel="success %"
              yRange={[0, 100]}
              time
              height={200}
              testId="success-chart"
            />
          </div>
        );
      }}
    </Async>
  );
}

export function ThroughputChart(props: { liveKey?: unknown }) {
  const res = useResource("validators/throughput", typed<ThroughputHistory>, props.liveKey, 5000);
  return (
    <Async res={res} what="the throughput history">
      {(h) => {
        const shown = h.validators.slice(0, MAX_VALIDATOR_LINES);
        if (shown.length === 0) return <Empty>No results yet: throughput shows once validators report.</Empty>;
        const x = [...new Set(shown.flatMap((v) => v.points.map((p) => seconds(p.at))))].sort((a, b) => a - b);
        // a bucket where a validator reported nothing is a zero, not a gap
        const ys = shown.map((v) => {
          const at = new Map(v.points.map((p) => [seconds(p.at), p.episodes_per_min]));
          return x.map((t) => at.get(t) ?? 0);
        });
        const more = h.validators.length - shown.length;
        return (
          <div data-testid="throughput-history" data-points={x.length}>
            <LineChart
              title="Validator throughput"
              description={`Episodes per minute each validator reported, per ${bucketWords(h.bucket_s)}${more > 0 ? `; the ${shown.length} busiest of ${h.validators.length}` : ""}.`}
              x={x}
              series={shown.map((v) => ({ label: shortKey(v.validator_hotkey), points: x.length < 30 }))}
              ys={ys}
              xLabel="time"
              yLabel="episodes / min"
              time
              height={200}
              testId="throughput-chart"
            />
          </div>
        );
      }}
    </Async>
  );
}
