# nothing to do: the implicit keep files the message
