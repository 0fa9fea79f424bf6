// The ESM entry's types (index.mjs): the same named exports as index.d.ts, and RedisStore as the
// real default export. Without this file TypeScript's nodenext resolution gives ESM apps the CJS
// declarations, where `import RedisStore from 'ferrosession'` is the whole module object.
export * from './index.js'
import { RedisStore } from './index.js'
export default RedisStore
