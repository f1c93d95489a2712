// A program a client developer would write against the generated types: tsc --strict must accept
// it, so the document describes these calls, their bodies and their responses.
import createClient from "openapi-fetch";
import type { paths } from "./schema";

const api = createClient<paths>({ baseUrl: "http://127.0.0.1:8090", headers: { "X-API-Key": "key" } });

export async function tour(): Promise<string[]> {
  const seen: string[] = [];

  const list = await api.GET("/api/v1/workflows", { params: { query: { limit: 10 } } });
  for (const w of list.data?.items ?? []) seen.push(w.id + " " + w.name);

  const run = await api.POST("/api/v1/workflows/{id}/execute", {
    params: { path: { id: "wf" } },
    body: { input_data: { user_id: "42" } },
  });
  if (run.data) seen.push(run.data.id + " " + run.data.status);

  await api.PATCH("/api/v1/webhooks/endpoints/{id}", { params: { path: { id: "ep" } }, body: { enabled: true } });
  const msg = await api.POST("/api/v1/webhooks/deliver", {
    body: { event_type: "invoice.paid", payload: { invoice: "in_1" } },
  });
  if (msg.data) seen.push(msg.data.message_id ?? "");

  const mail = await api.POST("/api/v1/notifications/email", {
    body: { to: ["ada@example.com"], subject: "Hi", body: "Hello" },
  });
  if (mail.data) seen.push(mail.data.id + " " + mail.data.status);

  const ev = await api.POST("/api/v1/events", { body: { type: "user.created", data: { id: "42" } } });
  if (ev.error) seen.push(ev.error.error.code);

  const rules = await api.GET("/api/v1/automation/rules", { params: { query: { limit: 5 } } });
  for (const r of rules.data?.items ?? []) seen.push(r.id + " " + String(r.enabled));
  return seen;
}
