// Client of the public realtime WebSocket (`/ws/realtime`, kinitro.protocol.realtime):
// subscribe to every event, take the snapshot, fold events (several per `events` frame)
// into the store, reconnect with backoff (a reconnect gets a fresh snapshot, so nothing
// missed while away is lost).

import type * as api from "./generated/api";
import { applyEvent, applySnapshot, setConnection } from "./store";

const PING_INTERVAL_MS = 20_000;
const MAX_BACKOFF_MS = 5_000;

function messageId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // uuid4 version/variant bits
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function mark(name: string): void {
  if (performance.getEntriesByName(name).length === 0) performance.mark(name);
}

export function realtimeUrl(): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/ws/realtime`;
}

export function startRealtime(url = realtimeUrl()): () => void {
  let socket: WebSocket | undefined;
  let ping: ReturnType<typeof setInterval> | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let backoff = 500;
  let stopped = false;

  const connect = () => {
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      mark("kinitro:ws-open");
      backoff = 500;
      socket?.send(
        JSON.stringify({ type: "subscribe", id: messageId(), event_types: [], filters: {} }),
      );
      ping = setInterval(() => {
        if (socket?.readyState === WebSocket.OPEN) {
          socket.send(JSON.stringify({ type: "ping", id: messageId() }));
        }
      }, PING_INTERVAL_MS);
    });
    socket.addEventListener("message", (ev) => {
      let msg: api.ServerMessage;
      try {
        msg = JSON.parse(typeof ev.data === "string" ? ev.data : "") as api.ServerMessage;
      } catch {
        return;
      }
      switch (msg.type) {
        case "snapshot":
          mark("kinitro:snapshot");
          applySnapshot(msg.data);
          setConnection("live");
          break;
        case "events": {
          // one frame carries the events of one server tick, in commit order
          for (const event of msg.events) applyEvent(event);
          break;
        }
        case "error":
          console.warn("realtime error", msg);
          break;
      }
    });
    socket.addEventListener("close", () => {
      clearInterval(ping);
      if (stopped) return;
      setConnection("reconnecting");
      retry = setTimeout(connect, backoff * (0.75 + Math.random() / 2)); // jitter: no herd
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    });
  };

  setConnection("connecting");
  connect();
  return () => {
    stopped = true;
    clearInterval(ping);
    clearTimeout(retry);
    socket?.close();
    setConnection("offline");
  };
}
