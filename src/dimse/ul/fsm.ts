/**
 * The DICOM upper layer protocol state machine, PS3.8 section 9.2, kept as data so that it can be
 * checked line by line against Table 9-10 (states), Table 9-6 ... 9-9 (actions) and the state
 * transition table (Table 9-10). Modelled on pynetdicom's fsm.py. Executing the actions is the
 * job of association.ts; this module only says which action an (event, state) pair calls for.
 */

export const STATES = {
  'Sta1': 'Idle',
  'Sta2': 'Transport connection open (Awaiting A-ASSOCIATE-RQ PDU)',
  'Sta3': 'Awaiting local A-ASSOCIATE response primitive (from local user)',
  'Sta4': 'Awaiting transport connection opening to complete (from local transport service)',
  'Sta5': 'Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU',
  'Sta6': 'Association established and ready for data transfer',
  'Sta7': 'Awaiting A-RELEASE-RP PDU',
  'Sta8': 'Awaiting local A-RELEASE response primitive (from local user)',
  'Sta9': 'Release collision requestor side; awaiting A-RELEASE response (from local user)',
  'Sta10': 'Release collision acceptor side; awaiting A-RELEASE-RP PDU',
  'Sta11': 'Release collision requestor side; awaiting A-RELEASE-RP PDU',
  'Sta12': 'Release collision acceptor side; awaiting A-RELEASE response primitive (from local user)',
  'Sta13': 'Awaiting Transport Connection Close Indication (Association no longer exists)',
} as const;
export type State = keyof typeof STATES;

export const EVENTS = {
  'Evt1': 'A-ASSOCIATE Request (local user)',
  'Evt2': 'Transport Connect Confirm (local transport service)',
  'Evt3': 'A-ASSOCIATE-AC PDU (received on transport connection)',
  'Evt4': 'A-ASSOCIATE-RJ PDU (received on transport connection)',
  'Evt5': 'Transport Connection Indication (local transport service)',
  'Evt6': 'A-ASSOCIATE-RQ PDU (received on transport connection)',
  'Evt7': 'A-ASSOCIATE response primitive (accept)',
  'Evt8': 'A-ASSOCIATE response primitive (reject)',
  'Evt9': 'P-DATA request primitive',
  'Evt10': 'P-DATA-TF PDU (received on transport connection)',
  'Evt11': 'A-RELEASE Request primitive',
  'Evt12': 'A-RELEASE-RQ PDU (received on transport connection)',
  'Evt13': 'A-RELEASE-RP PDU (received on transport connection)',
  'Evt14': 'A-RELEASE response primitive',
  'Evt15': 'A-ABORT Request primitive',
  'Evt16': 'A-ABORT PDU (received on transport connection)',
  'Evt17': 'Transport connection closed indication (local transport service)',
  'Evt18': 'ARTIM timer expired (Association reject/release timer)',
  'Evt19': 'Unrecognized or invalid PDU received',
} as const;
export type Event = keyof typeof EVENTS;

export interface ActionSpec {
  description: string;
  /** The next state; a list when the action decides between them (AE-6, AR-8). */
  next: State | readonly State[];
}

export const ACTIONS = {
  // Association establishment (PS3.8 Table 9-6)
  'AE-1': { description: 'Issue TRANSPORT CONNECT request primitive to local transport service', next: 'Sta4' },
  'AE-2': { description: 'Send A-ASSOCIATE-RQ-PDU', next: 'Sta5' },
  'AE-3': { description: 'Issue A-ASSOCIATE confirmation (accept) primitive', next: 'Sta6' },
  'AE-4': { description: 'Issue A-ASSOCIATE confirmation (reject) primitive and close transport connection', next: 'Sta1' },
  'AE-5': { description: 'Issue Transport connection response primitive; start ARTIM timer', next: 'Sta2' },
  'AE-6': {
    description:
      'Stop ARTIM timer and if A-ASSOCIATE-RQ acceptable by service-provider: issue A-ASSOCIATE indication primitive (next state Sta3); otherwise: issue A-ASSOCIATE-RJ-PDU and start ARTIM timer (next state Sta13)',
    next: ['Sta3', 'Sta13'],
  },
  'AE-7': { description: 'Send A-ASSOCIATE-AC PDU', next: 'Sta6' },
  'AE-8': { description: 'Send A-ASSOCIATE-RJ PDU and start ARTIM timer', next: 'Sta13' },
  // Data transfer (Table 9-7)
  'DT-1': { description: 'Send P-DATA-TF PDU', next: 'Sta6' },
  'DT-2': { description: 'Send P-DATA indication primitive', next: 'Sta6' },
  // Association release (Table 9-8)
  'AR-1': { description: 'Send A-RELEASE-RQ PDU', next: 'Sta7' },
  'AR-2': { description: 'Issue A-RELEASE indication primitive', next: 'Sta8' },
  'AR-3': { description: 'Issue A-RELEASE confirmation primitive, and close transport connection', next: 'Sta1' },
  'AR-4': { description: 'Issue A-RELEASE-RP PDU and start ARTIM timer', next: 'Sta13' },
  'AR-5': { description: 'Stop ARTIM timer', next: 'Sta1' },
  'AR-6': { description: 'Issue P-DATA indication', next: 'Sta7' },
  'AR-7': { description: 'Issue P-DATA-TF PDU', next: 'Sta8' },
  'AR-8': {
    description: 'Issue A-RELEASE indication (release collision): if association-requestor, next state is Sta9, if not next state is Sta10',
    next: ['Sta9', 'Sta10'],
  },
  'AR-9': { description: 'Send A-RELEASE-RP PDU', next: 'Sta11' },
  'AR-10': { description: 'Issue A-RELEASE confirmation primitive', next: 'Sta12' },
  // Association abort (Table 9-9)
  'AA-1': { description: 'Send A-ABORT PDU (service-user source) and start (or restart if already started) ARTIM timer', next: 'Sta13' },
  'AA-2': { description: 'Stop ARTIM timer if running. Close transport connection', next: 'Sta1' },
  'AA-3': {
    description:
      'If (service-user initiated abort): issue A-ABORT indication and close transport connection; otherwise (service-provider initiated abort): issue A-P-ABORT indication and close transport connection',
    next: 'Sta1',
  },
  'AA-4': { description: 'Issue A-P-ABORT indication primitive', next: 'Sta1' },
  'AA-5': { description: 'Stop ARTIM timer', next: 'Sta1' },
  'AA-6': { description: 'Ignore PDU', next: 'Sta13' },
  'AA-7': { description: 'Send A-ABORT PDU', next: 'Sta13' },
  'AA-8': { description: 'Send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication, and start ARTIM timer', next: 'Sta13' },
} as const satisfies Record<string, ActionSpec>;
export type Action = keyof typeof ACTIONS;

type Row = Partial<Record<State, Action>>;

/** Sta6 ... Sta12: every state in which an association exists or is being released. */
function established(action: Action): Row {
  return { Sta6: action, Sta7: action, Sta8: action, Sta9: action, Sta10: action, Sta11: action, Sta12: action };
}

/**
 * PS3.8 Table 9-10, row by row. A missing (event, state) pair is a local primitive issued in a
 * state where the standard does not allow it; association.ts refuses it. Every PDU event has an
 * entry in every state where a transport connection exists.
 */
export const TRANSITIONS: Readonly<Record<Event, Row>> = {
  Evt1: { Sta1: 'AE-1' },
  Evt2: { Sta4: 'AE-2' },
  Evt3: { Sta2: 'AA-1', Sta3: 'AA-8', Sta5: 'AE-3', ...established('AA-8'), Sta13: 'AA-6' },
  Evt4: { Sta2: 'AA-1', Sta3: 'AA-8', Sta5: 'AE-4', ...established('AA-8'), Sta13: 'AA-6' },
  Evt5: { Sta1: 'AE-5' },
  Evt6: { Sta2: 'AE-6', Sta3: 'AA-8', Sta5: 'AA-8', ...established('AA-8'), Sta13: 'AA-7' },
  Evt7: { Sta3: 'AE-7' },
  Evt8: { Sta3: 'AE-8' },
  Evt9: { Sta6: 'DT-1', Sta8: 'AR-7' },
  Evt10: { Sta2: 'AA-1', Sta3: 'AA-8', Sta5: 'AA-8', ...established('AA-8'), Sta6: 'DT-2', Sta7: 'AR-6', Sta13: 'AA-6' },
  Evt11: { Sta6: 'AR-1' },
  Evt12: { Sta2: 'AA-1', Sta3: 'AA-8', Sta5: 'AA-8', ...established('AA-8'), Sta6: 'AR-2', Sta7: 'AR-8', Sta13: 'AA-6' },
  Evt13: { Sta2: 'AA-1', Sta3: 'AA-8', Sta5: 'AA-8', ...established('AA-8'), Sta7: 'AR-3', Sta10: 'AR-10', Sta11: 'AR-3', Sta13: 'AA-6' },
  Evt14: { Sta8: 'AR-4', Sta9: 'AR-9', Sta12: 'AR-4' },
  Evt15: { Sta3: 'AA-1', Sta4: 'AA-2', Sta5: 'AA-1', ...established('AA-1') },
  Evt16: { Sta2: 'AA-2', Sta3: 'AA-3', Sta5: 'AA-3', ...established('AA-3'), Sta13: 'AA-2' },
  Evt17: { Sta2: 'AA-5', Sta3: 'AA-4', Sta4: 'AA-4', Sta5: 'AA-4', ...established('AA-4'), Sta13: 'AR-5' },
  Evt18: { Sta2: 'AA-2', Sta13: 'AA-2' },
  Evt19: { Sta2: 'AA-1', Sta3: 'AA-8', Sta5: 'AA-8', ...established('AA-8'), Sta13: 'AA-7' },
};

/** The action Table 9-10 prescribes for this event in this state, or undefined when none is defined. */
export function actionFor(event: Event, state: State): Action | undefined {
  return TRANSITIONS[event][state];
}

/** The PDU received on the transport connection -> its event (Evt19 for anything unrecognized). */
export const PDU_EVENTS = {
  'A-ASSOCIATE-AC': 'Evt3',
  'A-ASSOCIATE-RJ': 'Evt4',
  'A-ASSOCIATE-RQ': 'Evt6',
  'P-DATA-TF': 'Evt10',
  'A-RELEASE-RQ': 'Evt12',
  'A-RELEASE-RP': 'Evt13',
  'A-ABORT': 'Evt16',
} as const satisfies Record<string, Event>;
