// Helpers for checking dashboard JSON against @grafana/schema (see make-check.mjs).
import type { DataQuery } from '@grafana/schema';

// The schema types use TypeScript string enums (TooltipDisplayMode.Multi = "multi"); JSON holds
// their values. Json<T> is T with every string enum replaced by the union of its values.
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

// A Prometheus panel query as Grafana saves it (the schema package has no Prometheus type).
export interface PromQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  editorMode?: 'code' | 'builder';
  interval?: string;
  exemplar?: boolean;
}
