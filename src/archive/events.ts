/** Domain events for plugins and metrics. Listeners must not throw (errors are caught and logged). */
export type ArchiveEvent =
  | { type: 'InstanceStored'; studyUid: string; seriesUid: string; sopUid: string; size: number; replaced: boolean }
  | { type: 'StudyDeleted'; studyUid: string }
  | { type: 'SeriesDeleted'; studyUid: string; seriesUid: string }
  | { type: 'InstanceDeleted'; studyUid: string; seriesUid: string; sopUid: string };

export type ArchiveEventListener = (event: ArchiveEvent) => void;

export interface EventBus {
  on(listener: ArchiveEventListener): () => void;
  emit(event: ArchiveEvent): void;
}

export function createEventBus(onListenerError: (err: unknown) => void): EventBus {
  const listeners = new Set<ArchiveEventListener>();
  return {
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(event) {
      for (const l of listeners) {
        try {
          l(event);
        } catch (err) {
          onListenerError(err);
        }
      }
    },
  };
}
