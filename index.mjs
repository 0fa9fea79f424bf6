import ferrosession from './index.js'

export const { RedisStore, PostgresStore, MySqlStore, MySQLStore, MongoStore, KnexStore, ConnectSessionKnexStore, SqliteStore, MemoryStore, createStore, sign, unsign, registerMetrics, session } = ferrosession
export default ferrosession.RedisStore
