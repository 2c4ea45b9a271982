const { setup, createActor, fromPromise } = require('xstate');
const m = setup({ actors: { p: fromPromise(async () => 1) } }).createMachine({
  id: 'm', initial: 'a', states: { a: { on: { GO: 'b' } }, b: { invoke: { id: 'p', src: 'p', onDone: 'c' } , on: {X: 'a'}}, c: {} } });
const evs = [];
const a = createActor(m, { inspect: (e) => { if (e.type === '@xstate.microstep') evs.push(e._transitions.map(t => [t.source.id, t.eventType, (t.target||[]).map(x=>x.id)])); } });
a.start(); a.send({ type: 'GO' });
setTimeout(() => { console.log(JSON.stringify(evs)); console.log(Object.keys(a.getSnapshot().children)); 
 for (const n of m.root.states.b.transitions ? [m.root.states.b] : []) { for (const [k, ts] of n.transitions) console.log(k, ts.map(t=>t.target.map(x=>x.id))) }
}, 10);
