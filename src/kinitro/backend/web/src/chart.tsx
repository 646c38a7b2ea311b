// Line charts on uPlot (loaded lazily: only pages with a chart pay for it).

import { useEffect, useRef, useState } from "preact/hooks";
import type uPlot from "uplot";

export const PALETTE = [
  "#0b5cad",
  "#c2410c",
  "#15803d",
  "#7e22ce",
  "#b91c1c",
  "#0e7490",
  "#a16207",
  "#be185d",
  "#4d7c0f",
  "#475569",
];

export interface SeriesSpec {
  label: string;
  color?: string;
  points?: boolean;
  dash?: boolean;
  /** Draw as steps (a value holds until the next point), e.g. weights. */
  stepped?: boolean;
}

export interface ChartProps {
  /** Accessible name of the chart (also its caption). */
  title: string;
  /** One-sentence description for screen readers. */
  description: string;
  x: number[];
  series: SeriesSpec[];
  ys: (number | null)[][];
  xLabel: string;
  yLabel: string;
  time?: boolean;
  height?: number;
  yRange?: [number, number];
  /** Index into x of a cursor to draw (trajectory replay). */
  marker?: number;
  testId?: string;
}

let uplotModule: Promise<typeof uPlot> | undefined;
function loadUplot(): Promise<typeof uPlot> {
  uplotModule ??= Promise.all([import("uplot"), import("uplot/dist/uPlot.min.css")]).then(
    ([m]) => m.default,
  );
  return uplotModule;
}

export function LineChart(props: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const markerRef = useRef<number | undefined>(props.marker);
  const [failed, setFailed] = useState<string>();
  markerRef.current = props.marker;
  const dataRef = useRef<uPlot.AlignedData>([props.x, ...props.ys] as uPlot.AlignedData);
  dataRef.current = [props.x, ...props.ys] as uPlot.AlignedData;

  const shape = `${props.series.map((s) => s.label).join("|")}:${props.time}:${props.height}`;

  useEffect(() => {
    let disposed = false;
    let observer: ResizeObserver | undefined;
    loadUplot()
      .then((UPlot) => {
        if (disposed || !host.current) return;
        const el = host.current;
        const width = Math.max(240, el.clientWidth);
        // Canvas cannot resolve CSS variables: read the theme's colours once.
        const css = getComputedStyle(document.documentElement);
        const axis = css.getPropertyValue("--fg-muted").trim() || "#4a5568";
        const grid = css.getPropertyValue("--grid").trim() || "#e6eaf0";
        const opts: uPlot.Options = {
          width,
          height: props.height ?? 240,
          scales: {
            x: { time: props.time ?? false },
            y: props.yRange ? { range: props.yRange } : {},
          },
          axes: [
            { label: props.xLabel, stroke: axis, grid: { stroke: grid }, ticks: { stroke: grid } },
            { label: props.yLabel, stroke: axis, grid: { stroke: grid }, ticks: { stroke: grid } },
          ],
          legend: { show: props.series.length > 1 },
          series: [
            { label: props.xLabel },
            ...props.series.map((s, i) => ({
              label: s.label,
              stroke: s.color ?? PALETTE[i % PALETTE.length],
              width: 2,
              dash: s.dash ? [6, 4] : undefined,
              points: { show: s.points ?? false },
              paths: s.stepped ? UPlot.paths.stepped?.({ align: 1 }) : undefined,
              spanGaps: true,
            })),
          ],
          hooks: {
            draw: [
              (u: uPlot) => {
                const m = markerRef.current;
                if (m === undefined) return;
                const xv = (u.data[0] as number[])[m];
                if (xv === undefined) return;
                const px = u.valToPos(xv, "x", true);
                const ctx = u.ctx;
                ctx.save();
                ctx.strokeStyle = "#b91c1c";
                ctx.lineWidth = 2 * devicePixelRatio;
                ctx.beginPath();
                ctx.moveTo(px, u.bbox.top);
                ctx.lineTo(px, u.bbox.top + u.bbox.height);
                ctx.stroke();
                ctx.restore();
              },
            ],
          },
        };
        plot.current?.destroy();
        plot.current = new UPlot(opts, dataRef.current, el);
        // The legend echoes hovered values for sighted users; the chart's label and
        // caption describe it for assistive tech.
        for (const legend of el.querySelectorAll(".u-legend")) legend.setAttribute("aria-hidden", "true");
        observer = new ResizeObserver(() => {
          const w = Math.max(240, el.clientWidth);
          if (plot.current && Math.abs(plot.current.width - w) > 2) {
            plot.current.setSize({ width: w, height: props.height ?? 240 });
          }
        });
        observer.observe(el);
      })
      .catch((err: unknown) => setFailed(String(err)));
    return () => {
      disposed = true;
      observer?.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
    // Rebuild only when the series layout changes; data updates go through setData.
  }, [shape]);

  useEffect(() => {
    plot.current?.setData(dataRef.current);
  }, [props.x, props.ys]);

  useEffect(() => {
    plot.current?.redraw(false, false);
  }, [props.marker]);

  return (
    <figure class="chart" data-testid={props.testId}>
      <figcaption>{props.title}</figcaption>
      <div
        ref={host}
        class="chart-host"
        role="img"
        aria-label={`${props.title}. ${props.description}`}
        style={{ minHeight: `${(props.height ?? 240) + 40}px` }}
      />
      {failed && <p class="error">Chart unavailable: {failed}</p>}
    </figure>
  );
}
