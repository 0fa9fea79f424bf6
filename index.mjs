import ferrosession from './index.js'

export const { RedisStore, PostgresStore, sign, unsign } = ferrosession
export default ferrosession.RedisStore
