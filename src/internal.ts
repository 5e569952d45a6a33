/**
 * hsmsim's internal entry, for tests and tools (not a stable API): the charts, the write and read models, deciders'
 * context helpers and the snapshot used to compare states.
 */
export { slotMachine } from "./machines/slot.js";
export { sessionMachine } from "./machines/session.js";
export { snapshotState } from "./model/snapshot.js";
export { evolve } from "./model/evolve.js";
export { ReadModel, sessionState, tokenFlags } from "./projections/read-model.js";
export { CALL_SCHEMA, redactArgs } from "./events/call-schema.js";
export { encodeRecord, decodeRecord } from "./events/codec.js";
export { slotIdFromSerial } from "./functions/context.js";
export { writeAccess, readAccess } from "./functions/objects.js";
