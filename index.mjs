import ferrosession from './index.js'

export const { RedisStore, PostgresStore, SqliteStore, MemoryStore, createStore, sign, unsign, session } = ferrosession
export default ferrosession.RedisStore
