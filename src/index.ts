/**
 * hsmsim's public entry: the simulator, its typed call API, the constants and the profiles. The pkcs11js drop-in is
 * `hsmsim/pkcs11js`; test and tool internals are `hsmsim/internal`.
 */
export { Simulator, Application, type SimulatorOptions } from "./actors/simulator.js";
export type { Call, CallArgs, CallOut, FnName, Template, SessionInfo, TokenInfo, SlotInfo, ModuleInfo } from "./events/calls.js";
export type { CallRecord, Fact, Answer } from "./events/types.js";
export type { EventStore } from "./events/store.js";
export { MemoryEventStore } from "./events/memory-store.js";
export { CK, rvName } from "./pkcs11/constants.js";
export { PROFILES, PROFILE_DIFFERENCES, type Profile, type ProfileName } from "./pkcs11/profiles.js";

import { Simulator, type SimulatorOptions } from "./actors/simulator.js";
/** A new in-process simulator (the embedded default: in-memory event store, no broker). */
export function createSimulator(opts: SimulatorOptions = {}): Simulator {
  return new Simulator(opts);
}
export { connect, RemoteSimulator, RemoteApplication, type ConnectOptions } from "./remote/client.js";
