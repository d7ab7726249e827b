// Writes dashboard.gen.ts: the dashboard JSON as TypeScript literals typed with @grafana/schema,
// so `tsc` checks the whole dashboard (Dashboard), each panel's options and custom field config
// against its panel plugin's schema, and each query (PromQuery). Object literals get excess
// property checks: a misspelt or unknown key is an error too.
//   node make-check.mjs ../dashboards/ingestion.json && npx tsc -p .
import { readFileSync, writeFileSync } from 'node:fs';

const PANELS = {
  timeseries: 'TimeSeriesPanelCfg_types.gen',
  stat: 'StatPanelCfg_types.gen',
  table: 'TablePanelCfg_types.gen',
  heatmap: 'HeatmapPanelCfg_types.gen',
  'status-history': 'StatusHistoryPanelCfg_types.gen',
};
const DIRS = { 'status-history': 'statushistory' };
const WITHOUT_FIELD_CONFIG = new Set(['stat']);

const file = process.argv[2];
if (!file) {
  console.error('usage: node make-check.mjs DASHBOARD.json');
  process.exit(2);
}
const dash = JSON.parse(readFileSync(file, 'utf8'));
const lit = (v) => JSON.stringify(v, null, 2);
const ident = (t) => 'P_' + t.replace(/[^a-z]/g, '_');

const out = [
  "import type { Dashboard } from '@grafana/schema';",
  "import type { Json, PromQuery } from './types';",
];
for (const [type, mod] of Object.entries(PANELS)) {
  out.push(`import type * as ${ident(type)} from '@grafana/schema/dist/esm/raw/composable/${DIRS[type] ?? type}/panelcfg/x/${mod}';`);
}
out.push('', `export const dashboard: Json<Dashboard> = ${lit(dash)};`, '');

const errors = [];
for (const p of dash.panels ?? []) {
  if (p.type === 'row') continue;
  const ns = PANELS[p.type] && ident(p.type);
  if (!ns) {
    errors.push(`panel ${p.id} "${p.title}": no schema mapping for panel type ${p.type}`);
    continue;
  }
  out.push(`export const panel${p.id}_options: Json<${ns}.Options> = ${lit(p.options ?? {})};`);
  const custom = p.fieldConfig?.defaults?.custom;
  if (WITHOUT_FIELD_CONFIG.has(p.type)) {
    if (custom !== undefined) errors.push(`panel ${p.id}: ${p.type} has no custom field config`);
  } else {
    out.push(`export const panel${p.id}_custom: Json<${ns}.FieldConfig> = ${lit(custom ?? {})};`);
  }
  out.push(`export const panel${p.id}_targets: Array<Json<PromQuery>> = ${lit(p.targets ?? [])};`);
  out.push('');
}
if (errors.length) {
  console.error(errors.join('\n'));
  process.exit(1);
}
writeFileSync(new URL('./dashboard.gen.ts', import.meta.url), out.join('\n'));
console.log(`dashboard.gen.ts: ${(dash.panels ?? []).length} panels`);
